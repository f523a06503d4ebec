"""baseliner: point-in-time inventory of compute instances across AWS, Google Cloud and Azure,
and the drift between snapshots, mapped to MITRE ATT&CK (DS0030 "Instance")."""

__version__ = "0.1.0"
