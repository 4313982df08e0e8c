"""Gray–Scott pattern classification (the CNN paper): catalogue, initial conditions, pattern
runs, stores, CNN, training, scans."""
