"""The pure ASGI middleware of benchmarks/asgi_middleware.py: one response header
on every HTTP response, the smallest middleware that touches each request. The
same class runs under Catzilla (app.add_middleware) and FastAPI."""


class HeaderMiddleware:
    def __init__(self, app, name: str = "x-bench", value: str = "1"):
        self.app = app
        self.header = (name.encode(), value.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = self.header

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_header)
