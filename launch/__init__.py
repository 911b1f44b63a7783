"""The run command behind scripts/up: a newcomer's `pulumi up` without a Pulumi login, a stack to create
or a passphrase to invent.

It checks what the stack needs on this machine before any pulumi command (preflight.py; each failure has
its own exit code, listed in preflight.Exit), keeps Pulumi's state and the stack's secrets passphrase in
the user's XDG directories unless the user chose otherwise (workspace.py), creates the stack if it is new
and runs `pulumi up` (__main__.py).
"""
