"""``regwiz images push``: copy images into the registry from an upstream, a ``docker save``
archive or an OCI layout, digests kept and checked; ``--list-kubeadm VERSION`` prints what a
kubeadm control plane of that release needs."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.commands.common import add_plan_argument, load_credentials, positive_int, user_path
from app.commands.output import echo
from app.errors import UsageError

if TYPE_CHECKING:
    from app.images.copy import ImageEvent
    from app.images.sources import ImageSource, SourceImage

DESCRIPTION = """\
Copy images into the plan's registry, under the same path without the source's registry name
(docker.io/library/busybox:1.36 becomes REGISTRY/library/busybox:1.36). Manifests are copied byte
for byte, so every digest (also of a multi-platform index and each platform) stays the source's,
and each tag is read back to check it. Blobs the registry already holds are not sent again, so a
re-run sends nothing. For an air-gapped cluster: on a machine with internet access, copy into a
registry there, or save the images with docker save / skopeo copy oci:DIR, carry the files over,
and push them with --tar or --oci.
"""

EPILOG = """\
the registry login: the operator account (credentials/operator.json next to the plan), or
--credentials-file. A source registry's login, if it needs one, comes from
REGWIZ_SOURCE_USERNAME and REGWIZ_SOURCE_PASSWORD (never a command line).
exit status: 0 every image copied and checked, 1 an image failed, 2 invalid plan or usage
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "images", help="copy images into the registry (air-gapped clusters, kubeadm images)",
        description="Images in the registry.")
    actions = parser.add_subparsers(dest="images_action", metavar="push", required=True)
    push = actions.add_parser(
        "push", help="copy images into the registry", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plan_argument(push)
    push.add_argument("images", nargs="*", metavar="REF",
                      help="images to copy from the registries they name")
    push.add_argument("--from", dest="from_list", metavar="LIST",
                      help="a file with one image reference per line (# comments)")
    push.add_argument("--tar", metavar="FILE", help="a docker save archive")
    push.add_argument("--oci", metavar="DIR", help="an OCI image layout directory")
    push.add_argument("--repository", metavar="NAME",
                      help="the repository for images of --tar/--oci named by a tag alone")
    push.add_argument("--source-ca", metavar="FILE",
                      help="a CA to trust for source registries, besides this machine's")
    push.add_argument("--credentials-file", metavar="FILE",
                      help="a push account's login (default: the operator account's)")
    push.add_argument("--parallel", type=positive_int, default=4, metavar="N",
                      help="blobs copied at once (default 4)")
    push.add_argument("--list-kubeadm", metavar="VERSION",
                      help="print the images a kubeadm control plane of VERSION needs, one per "
                           "line, and exit (use it as --from LIST)")
    push.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list_kubeadm:
        from app.images.kubeadm import kubeadm_images, kubeadm_source

        print(f"# kubeadm control plane {args.list_kubeadm}: {kubeadm_source()}")
        print("\n".join(kubeadm_images(args.list_kubeadm)))
        return 0
    from app.commands.common import load_plan_from_args
    from app.images.copy import copy_images
    from app.images.request import target_endpoint
    from app.plan import Secrets

    plan = load_plan_from_args(args, show_warnings=False)
    source, images = _source_and_images(args)
    credentials = load_credentials(plan, args.credentials_file) if args.credentials_file \
        else None
    target = target_endpoint(plan, Secrets.from_env(), credentials)
    report = copy_images(images, source, target, parallel=args.parallel,
                         on_progress=_print_event)
    for image in report.images:
        mark = "ok" if image.ok else "FAILED"
        echo(f"{mark:<7}{image.target}  {image.digest or '-'}  {image.message}")
        if image.hint and not image.ok:
            echo(f"       hint: {image.hint}")
    good = sum(1 for image in report.images if image.ok)
    print(f"{len(report.images)} image(s) in {report.seconds:.1f}s: {good} copied and checked, "
          f"{len(report.images) - good} failed; {report.bytes_sent} bytes sent")
    return 0 if report.ok else 1


def _source_and_images(args: argparse.Namespace) -> tuple[ImageSource, list[SourceImage]]:
    from app.images.request import PushRequest, resolve

    refs = list(args.images) + (_read_list(args.from_list) if args.from_list else [])
    return resolve(PushRequest(
        tuple(refs), user_path(args.tar, "--tar") if args.tar else None,
        user_path(args.oci, "--oci") if args.oci else None, args.repository,
        user_path(args.source_ca, "--source-ca") if args.source_ca else None))


def _read_list(path: str) -> list[str]:
    try:
        text = user_path(path, "--from").read_text()
    except OSError as error:
        raise UsageError(f"--from {path}: {error.strerror}") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


def _print_event(event: ImageEvent) -> None:
    if event.what == "manifest":
        echo(f"-> {event.image}: {event.detail}")
    elif event.what == "blob":
        echo(f"   {event.detail[:19]}  sending {event.size} bytes")
    elif event.what == "skipped":
        echo(f"   {event.detail[:19]}  already there")
    sys.stdout.flush()
