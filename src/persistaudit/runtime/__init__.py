"""Target runtimes: how a target is started, restarted and re-created on its volume.

One driver per kind of target behind the same interface (base.TargetRuntime), so the
suites do not know whether a target came from an image or, later, a compose file.
"""

from persistaudit.runtime.base import DockerContainer, Mount, TargetRuntime
from persistaudit.runtime.image import ImageRuntime

__all__ = ["DockerContainer", "ImageRuntime", "Mount", "TargetRuntime"]
