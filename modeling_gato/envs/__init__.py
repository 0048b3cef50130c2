"""Stage 1, the environments: the task registry and how each task's spaces map to the SPEC's columns (`tasks`),
the expert policies that ship with them or are trained once and cached (`experts`), and the reference scores
(expert and random returns) that normalise every result (`references`)."""
