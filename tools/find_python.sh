# Sourced by the tools/*.sh launchers. Sets PYTHON: $PYTHON if set, else the
# project's virtualenv (so the launchers work without an activated venv),
# else python on PATH.
_MMMOMA_VENV_PYTHON="$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$_MMMOMA_VENV_PYTHON" ]; then
        PYTHON=$_MMMOMA_VENV_PYTHON
    else
        PYTHON=python
    fi
fi
