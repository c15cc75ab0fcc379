"""pipelines.memory: freed batch memory is returned to the operating system during a run."""

import os

import pyarrow as pa
import pytest

from pipelines import memory


@pytest.mark.skipif("ARROW_DEFAULT_MEMORY_POOL" in os.environ, reason="the operator's choice of pool wins")
def test_arrow_uses_the_system_allocator_after_the_first_flow_call() -> None:
    memory.return_freed_memory_to_os()
    memory.return_freed_memory_to_os()  # once per process: a second call changes nothing
    assert pa.default_memory_pool().backend_name == "system"
    buf = pa.allocate_buffer(32 << 20)
    assert pa.total_allocated_bytes() >= 32 << 20
    del buf
    memory.trim()  # glibc's malloc_trim, or nothing elsewhere
    assert pa.total_allocated_bytes() < 32 << 20
