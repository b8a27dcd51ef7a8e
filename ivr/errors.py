"""One error tree for the whole product.

Messages say what was expected and what was found, so that a QA engineer or an
operator can act on them without reading code.
"""

from __future__ import annotations


class IvrError(Exception):
    """Base of every error the product raises on purpose."""


class ConfigError(IvrError):
    """Bad configuration, prompt, grammar or test-call file."""


class AudioError(IvrError):
    """Audio that cannot be used: missing, corrupt, empty or of the wrong format."""


class ModelError(IvrError):
    """A speech model that is missing, broken or of the wrong layout."""


class EngineError(IvrError):
    """A speech engine failed to start or to process audio."""


class ChannelError(IvrError):
    """A channel (SIP, microphone, scripted) failed."""
