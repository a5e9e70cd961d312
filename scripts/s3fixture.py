#!/usr/bin/env python3
"""Test fixture helper: puts objects into the test S3 server with boto3.

  s3fixture.py mkbucket BUCKET
  s3fixture.py put BUCKET KEY FILE
  s3fixture.py putdir BUCKET PREFIX DIR      every file under DIR as PREFIX + its relative path
  s3fixture.py multipart BUCKET KEY FILE PART_BYTES
  s3fixture.py delete BUCKET KEY
  s3fixture.py etag BUCKET KEY

Endpoint and credentials come from SOAK_TEST_ENDPOINT / AWS_ENDPOINT_URL and AWS_* variables.
Keys are passed as given (unicode, spaces and punctuation included).
"""
import os
import sys

import boto3
from botocore.config import Config


def client():
    endpoint = os.environ.get("SOAK_TEST_ENDPOINT") or os.environ["AWS_ENDPOINT_URL"]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
    )


def main(argv):
    cmd, args = argv[1], argv[2:]
    s3 = client()
    if cmd == "mkbucket":
        try:
            s3.create_bucket(Bucket=args[0])
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    elif cmd == "put":
        with open(args[2], "rb") as f:
            s3.put_object(Bucket=args[0], Key=args[1], Body=f)
    elif cmd == "putdir":
        bucket, prefix, root = args[0], args[1], args[2]
        for dirpath, _, names in os.walk(root):
            for n in sorted(names):
                path = os.path.join(dirpath, n)
                with open(path, "rb") as f:
                    body = f.read()
                s3.put_object(Bucket=bucket, Key=prefix + os.path.relpath(path, root), Body=body)
                if not body:
                    # SeaweedFS quirk: after an empty PUT, the next request on the same
                    # connection stalls until botocore's 60 s read timeout. Start afresh.
                    s3 = client()
    elif cmd == "multipart":
        bucket, key, path, part = args[0], args[1], args[2], int(args[3])
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)
        parts = []
        with open(path, "rb") as f:
            n = 1
            while True:
                chunk = f.read(part)
                if not chunk:
                    break
                r = s3.upload_part(Bucket=bucket, Key=key, PartNumber=n, UploadId=up["UploadId"], Body=chunk)
                parts.append({"PartNumber": n, "ETag": r["ETag"]})
                n += 1
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts})
    elif cmd == "delete":
        s3.delete_object(Bucket=args[0], Key=args[1])
    elif cmd == "etag":
        print(s3.head_object(Bucket=args[0], Key=args[1])["ETag"].strip('"'))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
