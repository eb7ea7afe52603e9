# (filled in by the setup part)
