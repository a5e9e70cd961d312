"""The fault suite's row logic (scripts/test-faults runs the proxy and soak for each row).

rows        which rows run (fault, tool, mode, rate, soak env), from FAULTS_QUICK, the rate and
            the selected fault names; the output table
dataset     the seeded dataset and its manifest
stall       the verdict on the stalls the proxy injected
check       one download / prewarm row: every byte, strays, the expected exit and failures
checkmount  one mount row: every file read through the mount, names, ESTALE once
CLI: python3 -m soaklib.faults rows|table|dataset|manifest|check|check-mount ..."""
