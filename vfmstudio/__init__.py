"""vfmstudio: a desktop studio for vision foundation models.

Importing this package stays light: no Qt, no torch. Heavy modules load when they are used.
"""

__version__ = "0.1.0"
