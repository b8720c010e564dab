"""
What a YAML parse error says, without the text it quotes.

PyYAML's C{str(error)} includes an excerpt of the document around the
problem; in a config file or an import manifest that excerpt can be a token.
"""

from __future__ import annotations

from typing import Optional

import yaml


def yaml_problem(error: yaml.YAMLError) -> tuple[str, Optional[yaml.Mark]]:
    """
    The problem PyYAML found, and where (its mark: C{line} and C{column}
    count from 0), if it knows.
    """
    if isinstance(error, yaml.MarkedYAMLError):
        problem = error.problem or error.context or "syntax error"
        return problem, error.problem_mark or error.context_mark
    if isinstance(error, yaml.reader.ReaderError):
        # A character code and a position, never text.
        return str(error), None
    return type(error).__name__, None
