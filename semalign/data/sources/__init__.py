"""The data sources: one module each, holding its loader, recipes and tasks.

Every module of this package is imported once by :func:`semalign.data.registry.discover` (when
:mod:`semalign.data` is imported) and registers what it offers with the decorators of
:mod:`semalign.data.registry`: ``@dataset`` (for ``load_dataset``), ``@task`` (for
``get_task``) and ``@pairs`` (for ``get_pairs``). No other module names a source.

* :mod:`.openi` — the offline Open-i reports (``openi-reports``, task ``openi-5class``);
* :mod:`.synthcxr` — SynthCXR (``synthcxr``, tasks ``synthcxr-pneumonia`` and
  ``synthcxr-vindr-<finding>``, pairs ``synthcxr-pairs``);
* :mod:`.mimic`, :mod:`.rsna`, :mod:`.vindr`, :mod:`.iu` — the local copies of the paper's
  datasets and of IU X-ray (``mimic-5x200``, ``rsna-pneumonia``, ``vindr-<finding>``;
  ``mimic-cxr-pairs``, ``iu-xray-pairs``).

Adding a new offline task (nothing shared is edited):

1. **A manifest**, ``data_manifests/<dataset>.yml``: name, title, version, homepage, sources,
   licence, ``access`` (``bundled`` or ``generated`` offline; ``credentialed`` makes its tasks
   ``publishable=False``), files, labels, splits and a ``recipes:`` entry describing the task
   (``semalign data ls`` lists it, ``semalign data check`` validates it).
2. **A source module**, ``semalign/data/sources/<source>.py``::

       from semalign.data.registry import Task, dataset, recipe_key, task
       from semalign.vocab import Modality

       @dataset("<dataset>")
       def load(seed: int = 0) -> pd.DataFrame:          # records: id, text/image, labels, split
           ...

       @task("<task>", dataset="<dataset>", modality=Modality.TEXT, finding=None, positive=None)
       def build(seed: int = 0) -> Task:
           ...  # train / test / anchors frames, then
           return Task("<task>", Modality.TEXT, classes, train, test, anchors,
                       recipe_key("<task>", recipe), "one line for the book", recipe)

   ``finding`` (a :class:`semalign.vocab.Finding` or its name) and ``positive`` (the class
   meaning "present") are given for a binary finding task; put a version number in the recipe
   and bump it when the frames change, so cached embeddings are recomputed.
3. **A profile line**: the task's name in ``text_task`` / ``vision_tasks`` of
   ``semalign/profiles/<profile>.yml`` (and its recipe overrides under ``task_params``).

``tests/test_data_registry.py`` does exactly this with a toy source and checks that the task
reaches ``get_task``, ``load_dataset`` and ``semalign data ls``.
"""
