"""One Great Expectations context per process, built on first use and reused.

Building a context, a data source and the suites costs seconds (``import great_expectations`` alone
is about 4 s); validating a partition against an existing definition costs far less. So a task (or
a test session) builds one :class:`ValidationContext` and every partition goes through it. The
context is ephemeral (nothing written to disk except Data Docs when asked), progress bars and
analytics are off (tqdm bars land in Airflow logs as errors).

Suites are registered under the stream and the fingerprint of the rule files: after a rule change,
the next run in the same process builds and registers the new suite beside the old one. A
long-form stream has two suites (``validation.suites.parts``): its readings and its values, each
with its own data asset.

GX fingerprints every pandas batch under 1 GB (``HASH_THRESHOLD``) by hashing the whole frame,
index included: about 2.7 µs a row, more than all the expectations of a day cost together. The
fingerprint is a batch marker nothing here reads (the batch is an in-memory frame validated once),
so the context turns it off for the process.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from schemas.validation_rules import ValidationRules

_LOCK = threading.Lock()
_DEFAULT: ValidationContext | None = None


class ValidationContext:
    """An ephemeral GX context with one pandas asset, suite and validation definition per stream."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        _no_batch_fingerprint()
        self.gx = gx.get_context(mode="ephemeral", project_config=config)
        self._source = self.gx.data_sources.add_pandas("lantian")
        self._batches: dict[str, Any] = {}
        self._definitions: dict[tuple[str, str], Any] = {}
        self._checkpoints: dict[tuple[str, str, str], Any] = {}
        self._sites: dict[str, str] = {}

    def _batch_definition(self, stream: str, part: str) -> Any:
        name = stream if part == "value" else f"{stream}_{part}s"
        if name not in self._batches:
            asset = self._source.add_dataframe_asset(name)
            self._batches[name] = asset.add_batch_definition_whole_dataframe("partition")
        return self._batches[name]

    def definition(self, stream: str, rules: ValidationRules, part: str = "value") -> Any:
        """The validation definition of ``stream``'s ``part`` under ``rules`` (built once)."""
        import great_expectations as gx

        from validation.suites import build_suite

        key = (stream, rules.fingerprint, part)
        if key not in self._definitions:
            suite = self.gx.suites.add(build_suite(stream, rules, part))
            definition = gx.ValidationDefinition(
                name=f"{suite.name}_partition",
                data=self._batch_definition(stream, part),
                suite=suite,
            )
            self._definitions[key] = self.gx.validation_definitions.add(definition)
        return self._definitions[key]

    def checkpoint(
        self,
        stream: str,
        rules: ValidationRules,
        docs_dir: Path,
        result_format: dict,
        part: str = "value",
    ) -> Any:
        """A checkpoint that validates ``stream``'s ``part`` and renders Data Docs into
        ``docs_dir``."""
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction

        from validation.suites import suite_name

        site = self._site(docs_dir)
        key = (stream, rules.fingerprint, site, part)
        if key not in self._checkpoints:
            checkpoint = gx.Checkpoint(
                name=f"{suite_name(stream, rules, part)}_{site}",
                validation_definitions=[self.definition(stream, rules, part)],
                actions=[UpdateDataDocsAction(name="data_docs", site_names=[site])],
                result_format=result_format,
            )
            self._checkpoints[key] = self.gx.checkpoints.add(checkpoint)
        return self._checkpoints[key]

    def _site(self, docs_dir: Path) -> str:
        folder = str(Path(docs_dir).resolve())
        if folder not in self._sites:
            name = "docs_" + hashlib.sha256(folder.encode()).hexdigest()[:10]
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.gx.add_data_docs_site(
                name,
                {
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": folder,
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
            self._sites[folder] = name
        return self._sites[folder]

    def forget_results(self) -> None:
        """Drop stored validation results and the batches GX keeps: the in-memory store would
        otherwise grow per run, and the execution engine's batch cache holds the last frames
        validated (gigabytes for a district day) until the next run replaces them."""
        store = self.gx.validation_results_store
        for key in store.list_keys():
            store.remove_key(key)
        engine = getattr(self._source, "_execution_engine", None)
        if engine is not None:
            engine.batch_manager.reset_batch_cache()
            engine.batch_manager.batch_data_cache.clear()  # the frames themselves


def _no_batch_fingerprint() -> None:
    """Skip GX's whole-frame hash of pandas batches (see the module docstring)."""
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


def get_context() -> ValidationContext:
    """The process-wide context, built on first use."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = ValidationContext()
        return _DEFAULT
