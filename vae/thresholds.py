"""The thresholds that decide what the app and the CLIs call collapsed or active, in one place."""

COLLAPSED_KL = 0.01  # nats: a dimension whose mean KL is below this carries no information
ACTIVE_UNIT = 0.01  # Cov_x(E_q[z_d]) above this makes a unit active (Burda et al. 2015, Eq. 16)
