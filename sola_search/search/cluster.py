"""Ray for the search: an embedded local instance (default) or an existing cluster (`--address`),
and the `ProxyWorker` actors that run proxy trainings and keep their dataset between trials."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sola_search.errors import SolaError


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float
    address: str  # "local" for the embedded instance
    gpus_per_node: float = 0.0  # the most GPUs of one live node: what one worker can ask for
    memory: float = 0.0  # bytes Ray may give its tasks and actors, all nodes (its `memory` resource); 0: unknown
    embedded: bool = False  # started here with `worker_settings()`: a worker needs no runtime_env of its own


@contextmanager
def ray_session(address: str | None = None, quiet: bool = True) -> Iterator[Resources]:
    """Start (or join) Ray for the length of a search and always shut it down. An embedded instance
    is watched by a reaper process, so even a driver killed with -9 leaves no Ray process behind.
    A caller that has Ray running already (`ray.init` in a notebook, the test suite's one instance)
    keeps it: the search uses it and leaves it running (`ray.init` would refuse a second one)."""
    import ray

    reaper = None
    borrowed = not address and ray.is_initialized()
    kwargs = dict(include_dashboard=False, log_to_driver=not quiet, logging_level="ERROR",
                  configure_logging=True)
    try:
        if address:  # the caller has checked it (`check_address`) before making anything
            _send_token_if_available()
            try:
                ray.init(address=address, **kwargs)
            except Exception as e:  # noqa: BLE001 — ConnectionError, Ray's AuthenticationError, ...: one line
                raise SolaError(f"cannot join the Ray cluster at {address}: {_join_failure(e)}") from None
        elif not borrowed:
            reaper = subprocess.Popen([sys.executable, "-m", "sola_search.search.reaper", str(os.getpid())],
                                      start_new_session=True, stdin=subprocess.DEVNULL)
            # address="local" always starts a new instance (plain init would attach to any running one).
            ray.init(address="local", _system_config=worker_settings(), **kwargs)
        res = ray.cluster_resources()
        per_node = max((n["Resources"].get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
        yield Resources(cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0), address=address or "local",
                        gpus_per_node=per_node, memory=res.get("memory", 0.0), embedded=reaper is not None)
    finally:
        if ray.is_initialized() and not borrowed:
            ray.shutdown()
        if reaper is not None:
            # The reaper sees the driver alive, so stop it; ray.shutdown() already ended the instance.
            reaper.terminate()
            reaper.wait(timeout=10)


def check_address(address: str) -> None:
    """Fail at once when nothing listens at HOST:PORT, or something that is not Ray: `ray.init` would
    retry for minutes, or for half a minute printing Ray's C++ warnings."""
    if address == "auto":  # Ray finds the local cluster itself
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    bare_ipv6 = ":" in host and not (host.startswith("[") and host.endswith("]"))
    if (not sep or not host or "/" in host or bare_ipv6 or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536):
        raise SolaError(f"--address {address!r}: expected HOST:PORT (the head's GCS port, 6379 by default; "
                        "[IPv6]:PORT), ray://HOST:PORT or auto")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
    except OSError as e:
        raise SolaError(f"cannot join the Ray cluster at {address}: nothing answers there ({e.strerror or e}); "
                        "is `ray start --head` running on that machine and the port open?") from None
    with conn:
        if not _speaks_grpc(conn):
            raise SolaError(f"--address {address}: something answers there, but not a Ray head (it does not speak "
                            "gRPC, as Ray's GCS does); give the head's GCS port (6379 unless `ray start --head "
                            "--port` said otherwise) or ray://HOST:10001")


# HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(conn: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the service on `conn` answers as a gRPC server (Ray's GCS and its client server are):
    an HTTP/2 server's first frame is its SETTINGS. Anything else (a web server, ssh, silence) would
    have `ray.init` retry for half a minute, its C++ core printing a warning at each try. Over TLS
    (RAY_USE_TLS) the bytes say nothing: then Ray is left to judge."""
    if os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true"):
        return True
    try:
        conn.settimeout(timeout)
        conn.sendall(_H2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # silence (a timeout), a reset
        return False
    return head[3] == 0x4 and head[4] & 0x1 == 0 and head[5:9] == bytes(4)  # SETTINGS, not an ACK, stream 0


def _send_token_if_available() -> None:
    """Ray 2.60 turns token authentication on for a cluster whenever a token exists (`ray start`,
    `ray.init()`), but a driver given an explicit address sends no token unless RAY_AUTH_MODE says
    "token": `--address` would fail to join a cluster started the default way. A driver that sends a
    token also joins a cluster without authentication, so a token found is sent — as Ray does for
    the driver of a local instance, for this process and its children. RAY_AUTH_MODE set by the
    user is left as it is."""
    if os.environ.get("RAY_AUTH_MODE") is not None or not _auth_token_available():
        return
    try:  # sets RAY_AUTH_MODE and refreshes Ray's cached config: the variable alone is read at import
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
    except ImportError:  # another Ray version: the variable, before anything imports Ray's core
        os.environ["RAY_AUTH_MODE"] = "token"
    else:
        _enable_token_auth()


def _auth_token_available() -> bool:
    """Where Ray looks for a token: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    try:
        with open(path) as f:
            return bool(f.read().strip())  # Ray refuses an empty token file
    except OSError:
        return False


def _join_failure(e: BaseException) -> str:
    """The first line of Ray's error, or what to do when the cluster refused the token."""
    chain, cause = [], e
    while cause is not None and len(chain) < 10:
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    if any("InvalidAuthToken" in text or "Authentication token" in text for text in chain):
        return ("the cluster requires its authentication token: copy the head's ~/.ray/auth_token to this "
                "machine, or set RAY_AUTH_TOKEN (Ray's token authentication)")
    return (str(e).splitlines() or [type(e).__name__])[0]


# Ray starts every worker at nice 15 (its `worker_niceness` setting: CPU for its own GCS and raylet
# first). A proxy training is the work itself: on a busy machine nice 15 left it a sliver of the CPU
# (a 28 s trial took 150-390 s). So workers keep the priority they inherit: the driver's, on the
# embedded instance. Ray reads the setting from the worker's environment (as its job supervisor does).
WORKER_ENV = {"RAY_worker_niceness": "0"}


def worker_settings() -> dict:
    """Ray's system config for an instance the search starts itself: its workers are not niced
    (`WORKER_ENV`'s reason), so an actor needs no runtime_env of its own (a process with one is
    started for it alone), and they import torch (and on a GPU machine dynamo and inductor) as they
    start, before the actor's `warm`, which paid for those imports itself (docs/performance.md).
    No idle workers started ahead (Ray's default starts one a core as the driver connects): with these
    imports each would hold ~0.7 GiB for the run's length, ~11 GiB on a 16-core host."""
    import torch

    preload = ["torch", "sola_search.search.cluster"]
    if torch.cuda.device_count():  # blocks are compiled on GPUs (NVML's count: no CUDA context here)
        preload += ["torch._dynamo", "torch._inductor.compile_fx"]
    return {"worker_niceness": 0, "preload_python_modules": preload, "prestart_worker_first_driver": False}


def worker_actor(options: dict, train_threads: int = 1, embedded: bool = False):
    """The `ProxyWorker` actor class with Ray's `options` (num_cpus, num_gpus): workers not niced
    below the driver (by `WORKER_ENV`, unless Ray was started `embedded` with `worker_settings`); a
    concurrency group of its own for `progress`, so that the driver can ask how a training is going
    while `train` runs; and `train_threads` threads for `warm` and `train` (2 for `run --ahead 1`: a
    pack the driver queues behind the one training enters `train_proxies` at once, and is built and
    captured meanwhile on a second thread; one pack at a time uses the device)."""
    import ray

    ray.method(concurrency_group="progress")(ProxyWorker.progress)  # marks the method, once is enough
    for method in (ProxyWorker.warm, ProxyWorker.train):  # in order, on one thread unless ahead
        ray.method(concurrency_group="train")(method)
    # Ray merges these variables into a job's own runtime_env (key by key), keeping the rest of it.
    actor = ray.remote(concurrency_groups={"progress": 1, "train": train_threads})(ProxyWorker)
    return actor.options(**options) if embedded else actor.options(**options, runtime_env={"env_vars": WORKER_ENV})


class ProxyWorker:
    """Proxy trainings, one pack of trials at a time, in a process that keeps its dataset and models
    (proxies caches them)."""

    def __init__(self, threads: int | None = None):
        """`threads`: torch's threads; by default the CPUs Ray assigned this worker (torch's own
        default, every core of the machine, oversubscribes a machine shared with other workers)."""
        import psutil

        t0, self.init_at = time.perf_counter(), round(time.time(), 3)
        # How long Ray's process had lived before the actor began in it: its own start, and the modules
        # it imported as it started (`worker_settings`), which the actor waits for.
        self.process_s = round(self.init_at - psutil.Process().create_time(), 3)
        self.preloaded = "torch" in sys.modules
        import torch

        if threads is None:
            import ray

            threads = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        self.threads = max(1, int(threads))
        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(self.threads)
        except RuntimeError:  # only possible before any inter-op work in the process
            pass
        self.pid = os.getpid()
        self.init_s = round(time.perf_counter() - t0, 3)
        self._progress: dict = {}
        self._scoring = threading.Lock()  # a supernet scores one pack at a time

    def progress(self) -> dict:
        """How the pack being trained is going (step, steps, images/s, ETA), as its training last
        reported it; empty between packs. Runs beside `train` (its own concurrency group)."""
        return dict(self._progress)

    def warm(self, config: dict, pack: int = 1, seeds: int = 1, supernet: dict | None = None) -> dict:
        """Pay a worker's one-off costs before its first trial: imports, the CUDA context, the
        dataset on the device, and a full pack (`pack` patterns, `seeds` seeds each) primed through
        every kernel a trial uses (`warm_up`: cuDNN's autotuning, lazily loaded kernels and the models
        are then kept by the process). With `supernet` (the run's `--estimator supernet`:
        its directory, budget, resolution, steps, latency table) the run's supernet instead: trained
        there (resuming its checkpoint) or loaded, and kept for `train` to score with. Returns seconds."""
        t0 = time.perf_counter()
        import torch

        from sola_search.proxies import ProxyConfig, load_proxy_data, warm_up

        cfg = ProxyConfig.from_dict(config)
        t1 = time.perf_counter()
        data = load_proxy_data(cfg)
        t2 = time.perf_counter()
        if supernet is not None:
            self.supernet = self._supernet(cfg, data, supernet)
            if cfg.compile == "blocks":  # `run --estimator supernet --compile blocks`: compiled scoring
                self.supernet.compile()
            info = dict(status="ok", reason="", supernet_sha256=self.supernet.sha256,
                        supernet_train_s=self.supernet.meta.get("train_s"))
        else:
            warm = warm_up(cfg, data, pack, seeds)
            info = dict(status=warm.status, reason=warm.reason)
        if cfg.compile == "blocks":  # on a GPU: were the blocks' graphs in the compile caches?
            from sola_search.proxies.compiled import cache_use

            graphs = cache_use()
            if any(graphs.values()):
                info["graphs"] = graphs
        t3 = time.perf_counter()
        return dict(pid=self.pid, init_at=self.init_at, process_s=self.process_s, init_s=self.init_s,
                    preloaded=self.preloaded, import_s=round(t1 - t0, 3),
                    data_s=round(t2 - t1, 3), kernels_s=round(t3 - t2, 3),
                    **info, threads=torch.get_num_threads(), nice=os.getpriority(os.PRIO_PROCESS, 0))

    def _supernet(self, cfg, data, spec: dict):
        """The run's supernet, trained (its progress reported to `progress`) or loaded."""
        from sola_search.proxies.supernet import SupernetSpec, train_supernet
        from sola_search.space.latency import LatencyTable

        directory = spec["directory"]
        if not os.path.isfile(os.path.join(directory, "run.json")):  # a worker on another node than the driver
            raise SolaError(f"the run directory {directory} is not on {socket.gethostname()}, where the run's "
                            "supernet worker runs: --estimator supernet trains and keeps its weights there, so on a "
                            "cluster put the runs directory on storage every GPU node sees (--runs-dir); nothing "
                            "was trained")
        latency = LatencyTable.load(spec["latency"]) if spec.get("latency") else None
        s = SupernetSpec(cfg, spec["budget"], spec["resolution"], spec.get("steps"))

        def report(step: int, steps: int) -> None:
            self._progress = dict(phase="supernet", step=step, steps=steps, pid=self.pid)

        try:
            return train_supernet(s, directory, data, latency=latency, progress=report)
        finally:
            self._progress = {}

    def train(self, patterns: list[str], config: dict, faults: dict[str, str] | None = None,
              progress_every: float = 5.0, seeds: int | list[list[int]] = 1,
              estimator: str = "train") -> list[list[dict]]:
        """Train a pack of patterns together, each with `seeds` seeds (the config's seed, the next,
        …: `seed_list`; or each pattern's own list of seeds, as `run --confirm` gives them), all of
        them models of one pack; one list per pattern, one result per seed.
        When the whole pack fails (out of memory, an exception) each pattern is tried again alone
        (with its seeds), so that one bad pattern does not fail the others. `faults` (pattern →
        'raise', 'oom' or 'nan') injects failures for tests of the failure paths: 'raise' and 'oom'
        fail the whole call, 'nan' that pattern's runs. The training reports its progress (for
        `progress`) at most every `progress_every` seconds. `estimator="supernet"`: each pattern's
        score with the supernet `warm` loaded (one result each, all scored in one call)."""
        from sola_search.proxies import ProxyConfig, seed_list, train_proxies

        start = time.perf_counter()
        faults = faults or {}
        for kind in ("raise", "oom", "die"):
            if kind in faults.values():
                self._inject(kind, [p for p in patterns if faults.get(p) == kind][0])
        if estimator == "supernet":
            with self._scoring:
                queued, start = time.perf_counter() - start, time.perf_counter()
                scored = self.supernet.score(patterns)
            wall = time.perf_counter() - start
            return [[{**r.to_dict(), "worker_s": wall, "queued_s": round(queued, 3), "worker_pid": self.pid}]
                    for r in scored]
        cfg = ProxyConfig.from_dict(config)
        diverging = [p for p in patterns if faults.get(p) == "nan"]
        packed = [p for p in patterns if p not in diverging]

        def report(info: dict) -> None:
            self._progress = {**info, "pid": self.pid, "pack": len(patterns)}

        each = (dict(zip(patterns, seeds, strict=True)) if isinstance(seeds, list)
                else dict.fromkeys(patterns, seed_list(cfg.seed, seeds)))

        queued = []  # each call's seconds waiting for the pack before it to leave the device

        def train(pack: list[str], cfg: ProxyConfig) -> dict[str, list]:
            """pattern → its seeds' results, the pack's patterns and seeds trained together."""
            flat = train_proxies([p for p in pack for _ in each[p]], cfg, seeds=[s for p in pack for s in each[p]],
                                 progress=report, progress_every=progress_every)
            queued.append(flat[0].phases.get("queued", 0.0))
            ends = [0, *itertools.accumulate(len(each[p]) for p in pack)]
            return {p: flat[ends[i] : ends[i + 1]] for i, p in enumerate(pack)}

        try:
            results = train(packed, cfg) if packed else {}
            if len(packed) > 1 and all(r.status in ("oom", "error") for runs in results.values() for r in runs):
                results = {p: train([p], cfg)[p] for p in packed}
            for p in diverging:
                results[p] = train([p], cfg.replace(lr=1e6))[p]
        finally:
            self._progress = {}
        # The pack's own wall: not the seconds it waited for the pack before it to leave the device.
        wall = time.perf_counter() - start - sum(queued)
        return [[{**r.to_dict(), "worker_s": wall, "queued_s": round(sum(queued), 3), "worker_pid": self.pid}
                 for r in results[p]] for p in patterns]

    @staticmethod
    def _inject(kind: str, pattern: str) -> None:
        if kind == "raise":
            raise RuntimeError(f"injected failure for {pattern}")
        if kind == "die":  # the process ends as a segfault or the OOM killer would end it, in this pack's turn
            from sola_search.proxies.train import device_turn

            with device_turn():  # a pack queued behind another dies when it would train, not before
                time.sleep(0.5)  # the pack before it has returned its results by then
                os._exit(1)
        import torch

        raise torch.OutOfMemoryError("CUDA out of memory (injected)")
