"""Prints which allocator an app uses and its memory statistics."""

import json

from catzilla import Catzilla

print("jemalloc available:", Catzilla.jemalloc_available())
print("available allocators:", Catzilla.get_available_allocators())

app = Catzilla(use_jemalloc=True, memory_profiling=True)
print(f"Using jemalloc: {app.has_jemalloc}")
print(f"Current allocator: {app.get_allocator_info()['current_allocator']}")
print("allocator info:", json.dumps(app.get_allocator_info(), indent=2))
print("memory stats:", json.dumps(app.get_memory_stats(), indent=2))
app.close()
