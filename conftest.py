"""Root conftest: the persistaudit plugin comes in through its pytest11 entry point.

Here only: the demo service's code under fixtures/ is a target to audit, not tests.
"""

collect_ignore = ["fixtures", "bench"]
