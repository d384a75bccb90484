"""The jobs a user runs: ``predict``, ``train``, ``evaluate`` (``python <job>.py`` at the repository's
root, or ``segnet <job>`` once installed; ``segnet.cli`` dispatches). Each module's ``main(argv)``
parses its options, runs the job and returns the exit status."""
