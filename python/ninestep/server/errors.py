"""OpenAI's error body: {"error": {"message", "type", "param", "code"}}."""


class APIError(Exception):
    def __init__(self, status, message, param=None, code=None, type_=None, headers=None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type_ or {401: "authentication_error", 404: "not_found_error"}.get(
            status, "invalid_request_error" if 400 <= status < 500 else "server_error")
        self.headers = headers or {}

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(message, param=None, code=None):
    return APIError(400, message, param, code)
