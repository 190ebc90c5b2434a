"""The book's artifacts, one module each, in the order of the book.

=================  ==========  ==================================================
module             notebook    artifact
=================  ==========  ==================================================
``data_overview``  00          the data of each profile (label balance, SynthCXR)
``fig1``           01          Fig. 1: what the transforms do (projection)
``fig3``           02          Fig. 3: AUROC against the number of anchors
``table1``         03          Table 1: from general to medical models
``fig4``           04          Fig. 4: unimodal zero-shot classification
``claims``         05          the paper's claims beside our numbers
=================  ==========  ==================================================

Each module has ``compute(...)`` (the expensive part, called by its notebook with the
notebook's parameters; it returns tidy frames), ``chart(frame)`` or ``html(...)`` (the figure
or table) and ``reading(frame, ...)`` (the sentences that read it, from its numbers); the key
numbers a chapter states in its prose come from ``numbers(frame)``. :mod:`semalign.report.style`
holds what every chart shares. Only ``compute`` loads models or data (through
:mod:`semalign.encoders.tasks`); everything else reads frames.
"""
