"""The soak's background activities: one step after another until told to
stop, an exception in a step being an error to report, not the end."""


def repeat(stop, step, errors, what, pause=None):
    """Calls step() until the Event stop is set, waiting pause() seconds
    (pause None: none) between steps; exceptions go to the list errors."""
    while not stop.is_set():
        try:
            step()
        except Exception as e:  # noqa: BLE001 - reported at the end
            errors.append(f"{what}: {type(e).__name__}: {e}")
        if pause is not None:
            stop.wait(pause())
