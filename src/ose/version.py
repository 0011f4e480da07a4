"""The version of ose, which every study and exported model records."""

__version__ = "0.1.0"
