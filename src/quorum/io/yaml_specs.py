"""YAML for project specs, read with YAML 1.2's booleans.

PyYAML follows YAML 1.1, where ``yes``, ``no``, ``on`` and ``off`` are booleans, so
``options: [yes, no]`` (a common question) became ``[true, false]`` and failed as "not a
string". YAML 1.2, and what people mean, keep them as text: only ``true`` and ``false`` are
booleans here.
"""

import re
from typing import Any

import yaml

_BOOLEAN = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(yaml.SafeLoader):
    pass


# NOTE: resolvers are looked up by a value's first character; drop the 1.1 bool from each and
# add the 1.2 one back for 't', 'T', 'f' and 'F'.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOLEAN, list("tTfF"))


def load(text: str) -> Any:
    """The YAML document in ``text``; raises ``yaml.YAMLError`` when it is malformed."""
    return yaml.load(text, Loader=_Loader)
