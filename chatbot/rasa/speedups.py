"""Rasa's CLI with two per-turn costs of Rasa 3.6 taken out: `python -m speedups run ...`.

Profiled at 50 conversations (py-spy on the Rasa server, BENCHMARKS.md "Bot turn"), these were
half of the server's CPU per turn, and neither does work a turn needs:

- ``RemoteAction._validate_action_result`` checks every answer of the action server with
  ``jsonschema.validate``, which first checks the *schema* against the draft 2020-12
  meta-schema and builds a new validator: about 40 % of the server's CPU (some 20 ms of the
  31-33 ms of CPU a turn took), against under 2 ms for validating the answer itself. Here the schema is checked and the validator built
  once; every answer is validated as before, and an invalid one raises the same
  ``ValidationError`` (the same best match, with Rasa's hint appended).
- ``Event.resolve_by_type``, called for every event of a tracker read from the tracker store,
  walks every subclass of ``Event`` (``inspect.isabstract`` on each) to find the one named:
  about 6 %. Here a name found once is remembered; a name not found yet goes to Rasa's lookup,
  which also keeps its answers for unknown names (``default``, or ``ValueError``).

Runs inside the Rasa 3.6 environment (Python 3.10), found from Rasa's working directory like
``connectors/`` and ``actions/``. ``install()`` is idempotent.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Text, Type

from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event

_validators: Dict[Type[RemoteAction], Validator] = {}
_event_classes: Dict[Text, Type[Event]] = {}
_resolve_by_type = Event.resolve_by_type  # Rasa's own


def _action_response_validator(action: RemoteAction) -> Validator:
    """The validator of the action server's answers, its schema checked once per class."""
    validator = _validators.get(type(action))
    if validator is None:
        schema = action.action_response_format_spec()
        cls = validator_for(schema)
        cls.check_schema(schema)
        validator = _validators[type(action)] = cls(schema)
    return validator


def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
    """``jsonschema.validate(result, schema)`` with the validator built once."""
    error = best_match(_action_response_validator(self).iter_errors(result))
    if error is None:
        return True
    # the same hint as Rasa's RemoteAction._validate_action_result
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def _resolve_event_by_type(type_name: Text,
                           default: Optional[Type[Event]] = None) -> Optional[Type[Event]]:
    """``Event.resolve_by_type``, remembering the classes it found."""
    cls = _event_classes.get(type_name)
    if cls is not None:
        return cls
    cls = _resolve_by_type(type_name, default)
    if cls is not None and cls is not default and cls.type_name == type_name:
        _event_classes[type_name] = cls
    return cls


def install() -> None:
    """Put the two replacements in place (once)."""
    RemoteAction._validate_action_result = _validate_action_result
    Event.resolve_by_type = staticmethod(_resolve_event_by_type)


def main() -> None:
    """Rasa's command line, with the replacements installed."""
    import rasa.__main__

    install()
    rasa.__main__.main()


if __name__ == "__main__":
    main()
