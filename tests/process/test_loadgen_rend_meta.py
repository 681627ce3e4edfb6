"""rend-loadgen in the meta protocol (mg, ms, md, ma, mn) against rend in every mode: the
verifying workloads of test_loadgen_rend.py (setget, sizes, setops) on l1only, l1l2 (main port)
and l1l2batch (batch port), with plain and chunked L1; and on plain L1 every command at random
(blast: quiet mg multi-gets ended by mn, gat and touch as mg with T, ms in every mode, md, ma) and
the bench profile, with no errors and every request counted. A file of its own so that each
protocol set gets its own CTest time limit."""
import test_loadgen_rend as base


class LoadgenMetaAgainstRendTest(base.LoadgenAgainstRendTest):
    PROTOCOLS = ("meta",)
    LOAD = True
