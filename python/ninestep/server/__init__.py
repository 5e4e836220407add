"""An OpenAI-compatible HTTP server (`ninestep serve`; needs `pip install "ninestep[server]"`).

Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /health (503 while
loading), GET /metrics (Prometheus), POST /tokenize, POST /detokenize. One engine thread steps the
continuous-batching scheduler (`--parallel` sequences); asyncio serves HTTP."""
import sys
import threading
from pathlib import Path


def serve(model=None, *, host="127.0.0.1", port=8080, parallel=4, api_key=None, n_ctx=None, n_threads=None,
          ctx_override=False, max_queue=64, log_level="warning", kv_cache="auto"):
    """Runs the server until SIGINT/SIGTERM. The model loads in the background (/health says 503
    until it is ready); a model that fails to load stops the server (returns 1, the error on stderr);
    Ctrl-C ends running requests and exits."""
    from .._checks import positive_int

    if positive_int(port, "port", allow_zero=True) > 65535:
        raise ValueError(f"port: must be in [0, 65535], got {port}")
    positive_int(parallel, "parallel")
    positive_int(max_queue, "max_queue", allow_zero=True)
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError('the server needs its extra: pip install "ninestep[server]"') from None
    import ninestep
    from ninestep.loader import resolve

    from .app import State, create_app

    path = resolve(model)  # a file, a folder or a known model name (ninestep.hub)
    if path is None or not Path(path).exists():
        raise FileNotFoundError(f"model not found: {model}")
    path = Path(path)
    state = State(lambda: ninestep.load(path, n_ctx=n_ctx, n_threads=n_threads, ctx_override=ctx_override,
                                        n_seq=parallel, kv_cache=kv_cache),
                  name=path.stem if path.is_file() else path.name, api_key=api_key, max_queue=max_queue)
    app = create_app(state)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if state.worker is not None:
                state.worker.shutdown(timeout=0)  # running requests end now; streams get an error event
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                            lifespan="off")
    server = Server(config)
    def load():
        state.load()
        if state.load_error is not None:  # nothing to serve: say why and stop
            print(f"ninestep serve: the model failed to load: {state.load_error}", file=sys.stderr, flush=True)
            server.should_exit = True

    loader = threading.Thread(target=load, name="ninestep-load", daemon=True)
    loader.start()
    print(f"ninestep serve: {path} on http://{host}:{port} ({parallel} parallel)", file=sys.stderr, flush=True)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled once it has shut down
        pass
    finally:
        loader.join()
        state.close()
    return 1 if state.load_error is not None else 0
