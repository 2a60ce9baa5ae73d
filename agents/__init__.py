"""The worker: the runtime (`agents.runtime`, the framework) under the processors
(`agents.processors`, the application), wired together by `agents.worker` through `agents.context`."""
