"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap pip in its sanity venvs.

This machine reaches PyPI but not the host ansible-test downloads get-pip.py from. ansible-test looks
for a cached copy first, so scripts/sanity.sh installs this file there. It bootstraps pip from the
interpreter's own ensurepip and then installs what ansible-test asked for from the configured index.
"""
import subprocess
import sys

# ensurepip must run in a subprocess: called in-process it sets PIP_CONFIG_FILE=/dev/null in our
# environment, and the install below would then lose this machine's index and certificate settings.
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
wanted = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.run([sys.executable, "-m", "pip", "install", *wanted], check=False).returncode)
