"""The kill -9 suite (scripts/test-kill9 is its entry point and documents what a trial checks).

state       settings and the dataset's manifest, from the environment
procs       soak's coordinator and worker processes (/proc), bounded runs
reqlog      the request-logging proxy and what a run fetched again
snapshots   what survived a kill: download files and parts, cache blocks
trials      the download and prewarm trials
mounttrial  the mount trials; reader: the paced readers through the mount
main        plans, the driver and the summary table (python3 -m soaklib.kill9)"""
