"""The snapshot's bounds (``docs/payload.md``) as the agent applies them.

A snapshot that breaks one is refused whole with a 400, so the agent trims
each list and string here first rather than lose the snapshot. The server's
half is ``reports/payload.py``; ``agent/tests/test_limits.py`` imports both
and fails if they disagree. A leaf module: the agent never imports the
server's code at run time (it needs only psutil and requests).
"""

# Strings: any free text, the long names (packages, mount points, devices),
# the short ones (versions, service names, hardware fields) and single words
# or addresses (architectures, states, file system types, UUIDs).
MAX_STRING = 4_096
MAX_NAME = 1_024
MAX_SHORT = 256
MAX_WORD = 64

# Processes and their command lines: at most MAX_CMDLINE_ARGS arguments of at
# most MAX_CMDLINE_CHARS characters in all.
MAX_PROCESSES = 20_000
MAX_CMDLINE_ARGS = 1_024
MAX_CMDLINE_CHARS = 8_192
MAX_USERS = 1_000
MAX_IPS = 256

# Inventory breadth: the optional lists.
MAX_SOFTWARE = 20_000
MAX_SOCKETS = 10_000
MAX_SERVICES = 10_000
MAX_DISKS = 1_000
MAX_INTERFACES = 1_000
MAX_ADDRESSES = 256
