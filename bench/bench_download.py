"""#5 Downloads: a 1 GiB result streamed by ``KlingHook.download`` to a local file and to S3,
then verified against its request by reading its metadata (``read_video_info_at``).

The "video" is a sparse 1 GiB MP4: the simulator's 10 s 720p video with sound, its mdat padded
to 1 GiB and its moov at the end (the worst case for a reader that must not read it whole),
served by a small ``http.server`` process on loopback that answers with ``socket.sendfile`` (so
the server is never the bottleneck). The S3 side is moto's ``ThreadedMotoServer`` in its own
process, reached through Airflow's ``ObjectStoragePath`` and an ``aws`` connection whose
``endpoint_url`` is that server.

Each download runs in a fresh process that samples its own RSS every 10 ms: growth = peak during
the download - RSS just before it. Throughput = 1 GiB / wall time of ``download()``, which for the
local file includes its fsync and atomic rename, and for S3 the whole multipart upload to the final
key, up to the CompleteMultipartUpload that makes the object appear. Baselines, in the same run
(medians of runs): ``curl -s -o`` of the same URL to the same local disk; and for S3 the moto
server's own ceiling: the same 1 GiB uploaded from memory by boto3 as one multipart upload, 16 MiB
parts, 4 at a time (nothing to download, nothing to check, moto's threads kept busy).

Verification runs in a fresh process too, after each download, on the saved file or object:
its RSS growth (the same 64 MiB budget) next to the download's own in the same run, the bytes it
read from the local file (``/proc/self/io`` rchar) next to the file's size, its time next to the
download's.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Row, median, print_table, rss_bytes, write_result

SIZE = 1024**3
#: What the padded video is, as its own metadata must say.
VIDEO = {"duration_s": 10.0, "width": 1280, "height": 720, "fps": 24.0, "codec": "h264", "has_audio": True}


def video_parts() -> tuple[bytes, int, bytes]:
    """(head, zero padding, tail) of the 1 GiB video: moov after a padded mdat."""
    from kling_provider.testing.media import mp4_parts

    head, _, tail = mp4_parts(1280, 720, 10.0, caption="a 1 GiB video", sound=True, moov_last=True)
    return mp4_parts(
        1280, 720, 10.0, caption="a 1 GiB video", sound=True, moov_last=True, mdat_padding=SIZE - len(head) - len(tail)
    )


# -- the video server (child process) -------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    path_on_disk = ""

    def do_GET(self) -> None:
        with open(self.path_on_disk, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            self.connection.sendfile(handle)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(path: str) -> None:
    _Handler.path_on_disk = path
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}/video.mp4", flush=True)
    server.serve_forever()


def serve_moto() -> None:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"http://127.0.0.1:{port}", flush=True)
    threading.Event().wait()


class Child:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_download", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- one measured download (child process) --------------------------------------------------


def download(url: str, destination: str, conn_id: str | None) -> dict[str, Any]:
    from kling_provider.hooks.kling import KlingHook

    hook = KlingHook()
    hook.settings  # noqa: B018 - look the connection up before measuring
    if destination.startswith("s3://"):
        from airflow.sdk import ObjectStoragePath

        ObjectStoragePath(destination, conn_id=conn_id).fs  # noqa: B018 - build the S3 filesystem first
    peak = before = rss_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    saved = hook.download(url, destination, conn_id=conn_id)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"wall": wall, "size": saved.size, "uri": saved.uri, "growth": max(peak, rss_bytes()) - before}


def verify(uri: str, conn_id: str | None) -> dict[str, Any]:
    """Read the saved video's metadata as the operator does after a download, measured alike."""
    from kling_provider.video import read_video_info_at

    if uri.startswith("s3://"):
        from airflow.sdk import ObjectStoragePath

        ObjectStoragePath(uri, conn_id=conn_id).fs  # noqa: B018 - build the S3 filesystem first
    peak = before = rss_bytes()
    read_before = _rchar()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    info = read_video_info_at(uri, conn_id)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return {
        "wall": wall,
        "growth": max(peak, rss_bytes()) - before,
        "read": _rchar() - read_before,
        "info": info.as_dict(),
    }


def _rchar() -> int:
    """Bytes this process has read through read() calls (files and sockets)."""
    with open("/proc/self/io") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("rchar:"))


def measure(url: str, destination: str, env: dict[str, str], conn_id: str | None = None) -> dict[str, Any]:
    """Download in a fresh process, then verify the saved file in another; both measured."""
    result = _child(["--child", url, destination, *([conn_id] if conn_id else [])], env)
    result["verify"] = _child(["--verify", result["uri"], *([conn_id] if conn_id else [])], env)
    assert result["verify"]["info"] == VIDEO, result["verify"]["info"]
    return result


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_download", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"{args[0]} child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def curl(url: str, destination: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", str(destination), url], check=True)
    wall = time.perf_counter() - start
    destination.unlink()
    return wall


CEILING_PART = 16 * 2**20
CEILING_THREADS = 4


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(max_pool_connections=CEILING_THREADS),
    )


def moto_ceiling(client: Any, data: bytes, key: str) -> float:
    """The S3 server's own ceiling: ``data`` (in memory) sent as one multipart upload, parts in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    upload = client.create_multipart_upload(Bucket="videos", Key=key)["UploadId"]

    def part(number: int) -> dict[str, Any]:
        offset = (number - 1) * CEILING_PART
        body = data[offset : offset + CEILING_PART]
        sent = client.upload_part(Bucket="videos", Key=key, UploadId=upload, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": sent["ETag"]}

    with ThreadPoolExecutor(CEILING_THREADS) as pool:
        parts = list(pool.map(part, range(1, -(-len(data) // CEILING_PART) + 1)))
    client.complete_multipart_upload(Bucket="videos", Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    wall = time.perf_counter() - start
    client.delete_object(Bucket="videos", Key=key)
    return wall


def s3_leftovers(client: Any, key: str) -> int:
    """Objects besides the saved video under its prefix, plus multipart uploads still open (want 0);
    checks the video's size on the way, and deletes it (moto keeps objects in memory)."""
    prefix = key.rsplit("/", 1)[0] + "/"
    listing = client.list_objects_v2(Bucket="videos", Prefix=prefix).get("Contents", [])
    assert [(o["Key"], o["Size"]) for o in listing if o["Key"] == key] == [(key, SIZE)], listing
    uploads = client.list_multipart_uploads(Bucket="videos").get("Uploads", [])
    client.delete_object(Bucket="videos", Key=key)
    return len(listing) - 1 + len(uploads)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--verify", nargs="+")
    parser.add_argument("--serve")
    parser.add_argument("--serve-moto", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--s3-repeats", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.serve_moto:
        serve_moto()
        return
    if args.child:
        url, destination, *conn = args.child
        print(json.dumps(download(url, destination, conn[0] if conn else None)))
        return
    if args.verify:
        uri, *conn = args.verify
        print(json.dumps(verify(uri, conn[0] if conn else None)))
        return

    with tempfile.TemporaryDirectory(prefix="kling-dl-", dir=os.environ.get("KLING_BENCH_TMP")) as tmp:
        work = Path(tmp)
        video = work / "video.mp4"
        head, padding, tail = video_parts()
        with open(video, "wb") as handle:
            handle.write(head)
            handle.seek(padding, os.SEEK_CUR)  # sparse: served from the page cache, no disk reads
            handle.write(tail)
        assert video.stat().st_size == SIZE
        server = Child("--serve", str(video))
        moto = Child("--serve-moto")
        try:
            env = {
                **os.environ,
                "AIRFLOW_CONN_KLING_DEFAULT": json.dumps(
                    {
                        "conn_type": "kling",
                        "host": "http://127.0.0.1:9",
                        "password": "sk-bench",
                        "extra": {"timeout": 60},
                    }
                ),
                "AIRFLOW_CONN_AWS_BENCH": json.dumps(
                    {
                        "conn_type": "aws",
                        "login": "testing",
                        "password": "testing",
                        "extra": {"endpoint_url": moto.url, "region_name": "us-east-1"},
                    }
                ),
            }
            client = s3_client(moto.url)
            client.create_bucket(Bucket="videos")
            curls: list[float] = []
            local: list[dict[str, Any]] = []
            s3: list[dict[str, Any]] = []
            ceilings: list[float] = []
            leftovers = 0
            for i in range(args.repeats):
                curls.append(curl(server.url, work / "curl.mp4"))
                local.append(measure(server.url, str(work / "out" / f"video-{i}.mp4"), env))
                (work / "out" / f"video-{i}.mp4").unlink()
            data = head + bytes(padding) + tail  # the served bytes, in memory before the clock starts
            for i in range(args.s3_repeats):
                s3.append(measure(server.url, f"s3://videos/run-{i}/video.mp4", env, "aws_bench"))
                leftovers += s3_leftovers(client, f"run-{i}/video.mp4")
                ceilings.append(moto_ceiling(client, data, f"ceiling-{i}/video.mp4"))
                curls.append(curl(server.url, work / "curl.mp4"))
            del data
        finally:
            server.stop()
            moto.stop()
    mib = SIZE / 2**20
    curl_tp = mib / median(curls)
    local_tp = mib / median([r["wall"] for r in local])
    s3_tp = mib / median([r["wall"] for r in s3])
    local_rss = max(r["growth"] for r in local) / 2**20
    s3_rss = max(r["growth"] for r in s3) / 2**20
    ceiling_tp = mib / median(ceilings)
    verify_local_rss = max(r["verify"]["growth"] for r in local) / 2**20
    verify_s3_rss = max(r["verify"]["growth"] for r in s3) / 2**20
    verify_local_read = max(r["verify"]["read"] for r in local)
    rows = [
        Row("local file: throughput", local_tp, curl_tp, "MiB/s", ">= 0.8x curl", local_tp >= 0.8 * curl_tp, "curl -o"),
        Row("local file: peak RSS growth", local_rss, 64, "MiB", "<= 64 MiB", local_rss <= 64, "limit"),
        Row("S3 (moto): throughput", s3_tp, curl_tp, "MiB/s", ">= 0.8x curl", s3_tp >= 0.8 * curl_tp, "curl -o"),
        Row("  same, against moto's ceiling", s3_tp, ceiling_tp, "MiB/s", "", None, "boto3 MPU from memory"),
        Row("S3 (moto): peak RSS growth", s3_rss, 64, "MiB", "<= 64 MiB", s3_rss <= 64, "limit"),
        Row("S3: objects besides the video, open uploads", leftovers, 0, "", "0", leftovers == 0, "none"),
        Row(
            "verify (local): peak RSS growth",
            verify_local_rss,
            local_rss,
            "MiB",
            "<= 64 MiB",
            verify_local_rss <= 64,
            "its download",
        ),
        Row("verify (local): bytes read", verify_local_read, SIZE, "B", "", None, "file size"),
        Row(
            "verify (local): time",
            median([r["verify"]["wall"] for r in local]),
            median([r["wall"] for r in local]),
            "s",
            "",
            None,
            "its download",
        ),
        Row(
            "verify (S3): peak RSS growth",
            verify_s3_rss,
            s3_rss,
            "MiB",
            "<= 64 MiB",
            verify_s3_rss <= 64,
            "its download",
        ),
        Row(
            "verify (S3): time",
            median([r["verify"]["wall"] for r in s3]),
            median([r["wall"] for r in s3]),
            "s",
            "",
            None,
            "its download",
        ),
        Row(
            "bytes saved, every run",
            min(r["size"] for r in local + s3),
            SIZE,
            "B",
            "= 1 GiB",
            all(r["size"] == SIZE for r in local + s3),
            "served",
        ),
    ]
    print_table(
        f"#5 downloads: 1 GiB via KlingHook.download (medians of {args.repeats} local, {len(s3)} S3 runs)", rows
    )
    write_result("download", rows, {"curl_s": curls, "local": local, "s3": s3, "moto_ceiling_s": ceilings})


if __name__ == "__main__":
    main()
