"""User-facing errors: one clear line naming the file or option and what was expected."""


class FacezooError(Exception):
    """Raised for bad input (config, files, weights). Entry points print it as one line and exit 2."""


class ConfigError(FacezooError, ValueError):
    """A config option has an invalid value."""


class DataError(FacezooError):
    """A data file or folder is missing, corrupt or does not match its partner."""


class WeightsNotFoundError(FacezooError, FileNotFoundError):
    """A pretrained network's weight file could not be found by the resolver."""


class WriteError(FacezooError, OSError):
    """A file could not be written (full disk, no permission); the previous file, if any, is unchanged."""
