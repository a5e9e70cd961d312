"""The verdict on the stalls the proxy injected: soak must abandon each one itself, in time."""


def stall_verdict(stats, limit):
    """([problems], note) for the stalls in the proxy's stats: soak must end each within limit s."""
    st = stats.get("stall", {})
    problems, secs = [], st.get("seconds_to_abort", [])
    if st.get("timed_out", 0): problems.append("soak waited out %d stall(s) (never abandoned)" % st["timed_out"])
    late = [s for s in secs if s > limit]
    if late: problems.append("%d stall(s) abandoned only after %.1f s (limit %g s)" % (len(late), max(late), limit))
    if not secs: return problems, ""
    kinds = ", ".join("%s %d" % (v, len(t)) for v, t in sorted(st.get("by_variant", {}).items()))
    return problems, "%d stall(s) (%s) abandoned by soak after %.1f-%.1f s" % (len(secs), kinds, min(secs), max(secs))
