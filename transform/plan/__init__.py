"""Step 5 as a declared, set-based conversion plan executed by DuckDB over staging (issue 14, in progress).

A :class:`~transform.plan.model.TablePlan` says, for one source table, everything the 2014 conversion does with
it — the document a newcomer reads:

* ``key`` — the source key (trimmed), whose first clean occurrence converts and later ones are duplicates;
* ``cascade`` — the ordered rules that give each row its fate before conversion: a ``Q-…`` quarantine reason
  or an ``R-…`` selection rule (the vocabularies of :mod:`transform.rules`), each an SQL predicate;
* ``columns`` — the target columns as SQL expressions over the source row and the joined mapping tables
  (office and unit maps, the NAM_TK bucket, TCVN3 → Unicode), computed once per *distinct* value by the
  pure functions of :mod:`transform.codes` (Arrow UDFs over distinct values, never per row);
* ``lookups`` and ``joins`` — what earlier tables converted (contracts, declarations, items), registered as tables
  and joined by full key; ``after_key`` — rules for a key's first occurrence (its parent was quarantined);
* ``id`` — the 14-digit IDs: the branch's window + the type digit + ``row_number()`` over the rows converted,
  in the plan's ``order`` (its declared columns, then the restore order: a total order, so IDs and the snapshot
  stay reproducible, and byte-identical to the Python rules they replace).

:func:`~transform.plan.engine.run_plan` executes one plan and returns the fates counted by SQL (converted +
excluded + quarantined = restored rows, checked), the target rows as Arrow batches, the quarantined rows with
all their source values, and what later (still Python) rules need to look up.

Tables converted by a plan today: ``SXXK.SNPL`` and ``SXXK.SSP`` → ``DSX_SP_NPL`` (:mod:`.sx_items`),
``SLXNK.ecsCX_DM_HH_DUA_VAO_D`` / ``…_RA_D`` → ``DCX_DM_HH_DUA_VAO_RA`` (:mod:`.cx_items`), the declaration headers
of both databases → ``DTO_KHAI_MD`` (:mod:`.declarations`), ``SLXNK.DHangMD`` → ``DHANG_MD``
(:mod:`.slxnk_lines`), the SXXK goods lines TH/DC/DK → ``DHANG_MD`` (:mod:`.sxxk_goods`), and the rows merged
into those (``ecsToKhaiMD``, ``DHANGMDDC_CT``: fates only, :mod:`.merged`), the SXXK norms ``DDINHMUC`` →
``DSX_DINH_MUC`` (:mod:`.sx_norms`), the GC and CX norms (:mod:`.gc_cx_norms`), and the
SXXK stock split over price groups (:mod:`.stock`). The other tables still run the Python rule functions of :mod:`transform.convert`, which
stay as the oracle the plans are tested against (tests/transform/test_plan_differential.py).
"""
