"""Set-up products: the default model and the sample media, fetched from registry packages."""
