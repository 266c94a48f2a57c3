"""Fetch the corpus and extra sources: http(s) with timeouts, retries with backoff and a
size limit, file:// URLs and local paths. Pure functions: nothing here knows about Luigi."""
from __future__ import annotations

import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

ALLOWED_SCHEMES = ("http", "https", "file")

ProgressCallback = Callable[[int, "int | None"], None]


class CorpusError(RuntimeError):
    """The corpus could not be fetched or is not what it should be."""


@dataclass(frozen=True)
class DownloadPolicy:
    """How hard to try, and how much to accept, when fetching the corpus."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    attempts: int = 4
    backoff_seconds: float = 1.0
    max_bytes: int = 50_000_000


CORPUS_URL_SETTING = "[DownloadCorpus] url or SPAM_CORPUS_URL"


def fetch(url: str, policy: DownloadPolicy = DownloadPolicy(),
          on_progress: ProgressCallback | None = None,
          setting: str = CORPUS_URL_SETTING) -> bytes:
    """Return the bytes behind ``url`` (http, https, file URL or a plain path).

    HTTP errors worth retrying (connection refused or reset, time-outs, 5xx, 429, a body
    cut short) are retried ``policy.attempts`` times with exponential backoff; then a
    :class:`CorpusError` says what happened on the last attempt. Errors name ``setting``,
    where the URL was configured.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        return _read_local(url, policy, setting)
    if scheme not in ALLOWED_SCHEMES:
        raise CorpusError(
            f"unsupported URL scheme {scheme!r} in {url!r}: use http://, https://, file:// "
            f"or a plain path ({setting})"
        )
    last_error: Exception | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            return _http_get(url, policy, on_progress, setting)
        except _PermanentHttpError as error:
            raise CorpusError(str(error)) from None
        except (requests.RequestException, _RetryableHttpError) as error:
            last_error = error
            if attempt < policy.attempts:
                time.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
    raise CorpusError(
        f"could not download {url} after {policy.attempts} attempts: {last_error}. "
        f"Check the network, or point {setting} at a mirror or a local copy"
    )


class _RetryableHttpError(Exception):
    pass


class _PermanentHttpError(Exception):
    pass


def _http_get(url: str, policy: DownloadPolicy, on_progress: ProgressCallback | None,
              setting: str) -> bytes:
    timeout = (policy.connect_timeout, policy.read_timeout)
    with requests.get(url, stream=True, timeout=timeout, verify=True) as response:
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableHttpError(f"HTTP {response.status_code} from {url}")
        if response.status_code >= 400:
            raise _PermanentHttpError(
                f"HTTP {response.status_code} {response.reason} from {url}: the file is not "
                f"there. Fix {setting}"
            )
        expected = response.headers.get("Content-Length")
        total = int(expected) if expected and expected.isdigit() else None
        if total is not None and total > policy.max_bytes:
            raise _PermanentHttpError(_too_large(url, total, policy))
        body = bytearray()
        for chunk in response.iter_content(chunk_size=64 * 1024):
            body.extend(chunk)
            if len(body) > policy.max_bytes:
                raise _PermanentHttpError(_too_large(url, len(body), policy))
            if on_progress:
                on_progress(len(body), total)
        if total is not None and len(body) != total:
            raise _RetryableHttpError(f"body cut short: got {len(body)} of {total} bytes")
        return bytes(body)


def _too_large(url: str, size: int, policy: DownloadPolicy) -> str:
    return (f"{url} is {size:,} bytes, over the {policy.max_bytes:,} byte limit "
            "([DownloadCorpus] max_download_bytes); is it the right file?")


def _read_local(url: str, policy: DownloadPolicy, setting: str) -> bytes:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)) \
        if url.lower().startswith("file:") else Path(url)
    if not path.is_file():
        raise CorpusError(f"{path} does not exist ({setting})")
    if path.stat().st_size > policy.max_bytes:
        raise CorpusError(_too_large(str(path), path.stat().st_size, policy))
    return path.read_bytes()
