"""semcom: task-oriented (semantic) image communication with honest byte counts.

Data flows one way: data -> transmitter (scheme.compress) -> channel -> receiver
(scheme.decompress + task model) -> metrics -> report.
"""

from semcom.errors import BitstreamError, InputError, SemcomError

__version__ = "0.1.0"

__all__ = ["BitstreamError", "InputError", "SemcomError", "__version__"]
