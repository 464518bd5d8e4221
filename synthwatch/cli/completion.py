"""`synthwatch completion bash`: a bash completion script for every command, subcommand and flag,
generated from the argument parser so it never falls behind. zsh users load it through
``bashcompinit``."""

from __future__ import annotations

import argparse
import shlex

TEMPLATE = """# synthwatch completion for bash (zsh: autoload -U bashcompinit && bashcompinit, then source this)
declare -gA _synthwatch_subcommands=(
{subcommands}
)
declare -gA _synthwatch_options=(
{options}
)
_synthwatch() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path=synthwatch word candidate i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        [[ "$word" == -* ]] && continue
        candidate="$path $word"
        [[ -n "${{_synthwatch_options[$candidate]+set}}" ]] && path="$candidate"
    done
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${{_synthwatch_options[$path]}}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${{_synthwatch_subcommands[$path]}}" -- "$cur"))
        [[ ${{#COMPREPLY[@]}} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _synthwatch synthwatch
"""


def commands(parser: argparse.ArgumentParser, path: str = "synthwatch") -> dict[str, tuple[list[str], list[str]]]:
    """{command path ("synthwatch", "synthwatch models promote"...): (subcommands, flags)}."""
    flags, subcommands, found = [], [], {}
    for action in parser._actions:  # argparse keeps no public list of its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                subcommands.append(name)
                found.update(commands(child, f"{path} {name}"))
        else:
            flags += [option for option in action.option_strings if option.startswith("--") or len(option) == 2]
    return {path: (sorted(subcommands), sorted(set(flags))), **found}


def bash_script(parser: argparse.ArgumentParser) -> str:
    table = commands(parser)

    def entries(index: int) -> str:
        return "\n".join(f"    [{shlex.quote(path)}]={shlex.quote(' '.join(pair[index]))}"
                         for path, pair in sorted(table.items()))

    return TEMPLATE.format(subcommands=entries(0), options=entries(1))
