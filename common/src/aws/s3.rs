//! S3, for results (`ec2-get REMOTE s3://bucket/prefix/`): the client, and uploads of files of
//! any size in bounded memory — one PutObject up to [`PART`], else a multipart upload in
//! [`PART`]-sized parts read from disk one at a time (aborted on failure, so no invisible parts
//! stay billed). With an endpoint override (`AWS_ENDPOINT_URL[_S3]`: the local cloud, MinIO)
//! buckets are addressed by path, as such endpoints expect. What does not belong here: what
//! is uploaded and the manifest (cmd/results_s3.rs).

use super::errors::{aws_error, error_code};
use crate::error::{Error, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::Digest;
use std::io::Read;
use std::path::Path;

/// Multipart part size (S3's minimum is 5 MiB): also the memory one upload holds.
pub const PART: usize = 8 * 1024 * 1024;

/// An S3 client.
#[derive(Clone, Debug)]
pub struct S3 {
    client: aws_sdk_s3::Client,
}

/// `s3://bucket/some/prefix/` → (`bucket`, `some/prefix`).
pub fn parse_url(s: &str) -> Option<std::result::Result<(String, String), String>> {
    let rest = s.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Some(Err(format!("{s}: no bucket (s3://BUCKET/PREFIX/)")));
    }
    Some(Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned())))
}

/// The S3 client for `region` (default chain), path-style under an endpoint override.
pub async fn connect(region: Option<&str>) -> Result<S3> {
    let sdk = super::ec2::sdk_config(region).await?;
    let path_style = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(path_style)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .interceptor(crate::log::AwsCallLog)
        .build();
    Ok(S3 {
        client: aws_sdk_s3::Client::from_conf(conf),
    })
}

impl S3 {
    /// The bucket exists and we may write to it — checked before any host is touched.
    pub async fn check_bucket(&self, bucket: &str) -> Result<()> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                Err(Error::input(format!("s3://{bucket}: no such bucket")))
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                Err(Error::input(format!("s3://{bucket}: access denied")))
            }
            Err(e) => Err(aws_error("HeadBucket", e).context(format!("s3://{bucket}"))),
        }
    }

    /// GetObject's answer (its body not read yet), `None` when there is no such object.
    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(aws_error("GetObject", e).context(format!("s3://{bucket}/{key}"))),
        }
    }

    /// Download an object into `path`, streamed (memory bounded by the SDK's chunks); returns
    /// its SHA-256 (hex). A missing object is bad input (the URL names it), not a failure.
    pub async fn download_file(&self, bucket: &str, key: &str, path: &Path) -> Result<String> {
        use std::io::Write;
        let url = format!("s3://{bucket}/{key}");
        let out = self
            .get_object(bucket, key)
            .await?
            .ok_or_else(|| Error::input(format!("{url}: no such object")))?;
        let mut file = std::fs::File::create(path)
            .map_err(|e| Error::infra(format!("{}: {e}", path.display())))?;
        let mut hash = sha2::Sha256::new();
        let mut body = out.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Error::infra(format!("{url}: {e}")))?
        {
            hash.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| Error::infra(format!("{}: {e}", path.display())))?;
        }
        Ok(hex(&hash.finalize()))
    }

    /// A small object's bytes (`None`: there is no such object).
    pub async fn get_bytes(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(out) = self.get_object(bucket, key).await? else {
            return Ok(None);
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| Error::infra(format!("s3://{bucket}/{key}: {e}")))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    /// A URL that GETs (`put` false) or PUTs object `key` without credentials, for `valid`.
    pub async fn presign(
        &self,
        bucket: &str,
        key: &str,
        put: bool,
        valid: std::time::Duration,
    ) -> Result<String> {
        let conf = aws_sdk_s3::presigning::PresigningConfig::expires_in(valid)
            .map_err(|e| Error::infra(format!("presigning: {e}")))?;
        let url = format!("s3://{bucket}/{key}");
        let req = if put {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .presigned(conf)
                .await
                .map_err(|e| aws_error("PutObject (presigned)", e).context(&url))?
        } else {
            self.client
                .get_object()
                .bucket(bucket)
                .key(key)
                .presigned(conf)
                .await
                .map_err(|e| aws_error("GetObject (presigned)", e).context(&url))?
        };
        Ok(req.uri().to_owned())
    }

    /// Delete object `key` (one that is not there is fine).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DeleteObject", e).context(format!("s3://{bucket}/{key}")))
    }

    /// Delete objects `keys` (those not there are fine), a thousand per DeleteObjects call
    /// (S3's most): a copy from 1,000 hosts cleans up in one call, not 1,000.
    pub async fn delete_all(&self, bucket: &str, keys: &[String]) -> Result<()> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let built = |e: aws_sdk_s3::error::BuildError| Error::infra(format!("DeleteObjects: {e}"));
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(built)?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(built)?;
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| aws_error("DeleteObjects", e).context(format!("s3://{bucket}")))?;
            if let Some(e) = out.errors().first() {
                return Err(Error::infra(format!(
                    "s3://{bucket}/{}: DeleteObjects: {} ({} of {} not deleted)",
                    e.key().unwrap_or("?"),
                    e.message().or(e.code()).unwrap_or("refused"),
                    out.errors().len(),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    /// Upload a small object from memory.
    pub async fn put_bytes(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| aws_error("PutObject", e).context(format!("s3://{bucket}/{key}")))?;
        Ok(())
    }

    /// Upload a file of any size, reading at most [`PART`] bytes at a time; returns its size
    /// and SHA-256 (hex).
    pub async fn upload_file(&self, bucket: &str, key: &str, path: &Path) -> Result<(u64, String)> {
        let url = format!("s3://{bucket}/{key}");
        let file = std::fs::File::open(path)
            .map_err(|e| Error::infra(format!("{}: {e}", path.display())))?;
        let size = file
            .metadata()
            .map_err(|e| Error::infra(format!("{}: {e}", path.display())))?
            .len();
        let mut parts = Parts {
            file,
            hash: sha2::Sha256::new(),
            path,
        };
        if size <= PART as u64 {
            let bytes = parts.next()?;
            self.put_bytes(bucket, key, bytes).await?;
            return Ok((size, hex(&parts.hash.finalize())));
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_error("CreateMultipartUpload", e).context(&url))?;
        let id = upload.upload_id().unwrap_or_default().to_owned();
        if let Err(e) = self.send_parts(bucket, key, &id, &mut parts).await {
            // Parts of an unfinished upload are invisible and billed: abort it.
            self.abort(bucket, key, &id).await;
            return Err(e);
        }
        Ok((size, hex(&parts.hash.finalize())))
    }

    /// Every part of a multipart upload, then its completion.
    async fn send_parts(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        parts: &mut Parts<'_>,
    ) -> Result<()> {
        let url = format!("s3://{bucket}/{key}");
        let mut done = Vec::new();
        let mut number = 1;
        loop {
            let bytes = parts.next()?;
            if bytes.is_empty() {
                break;
            }
            let out = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| aws_error("UploadPart", e).context(&url))?;
            done.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
            number += 1;
        }
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("CompleteMultipartUpload", e).context(&url))?;
        Ok(())
    }

    /// Abort an unfinished multipart upload (one already gone is fine; any other failure
    /// is said: its parts stay billed until a lifecycle rule removes them).
    async fn abort(&self, bucket: &str, key: &str, id: &str) {
        let abort = self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await;
        if let Err(a) = abort {
            if error_code(&a) != Some("NoSuchUpload") {
                crate::output::note(format!(
                    "s3://{bucket}/{key}: could not abort the upload {id}"
                ));
            }
        }
    }
}

/// A file read a part at a time, hashed as it goes.
struct Parts<'a> {
    file: std::fs::File,
    hash: sha2::Sha256,
    path: &'a Path,
}

impl Parts<'_> {
    /// The next part: at most [`PART`] bytes, empty at the end.
    fn next(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(PART);
        self.file
            .by_ref()
            .take(PART as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::infra(format!("{}: {e}", self.path.display())))?;
        self.hash.update(&buf);
        Ok(buf)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://b/x/y/").unwrap().unwrap(),
            ("b".to_owned(), "x/y".to_owned())
        );
        assert_eq!(
            parse_url("s3://b").unwrap().unwrap(),
            ("b".to_owned(), String::new())
        );
        assert!(parse_url("s3:///x").unwrap().is_err());
        assert!(parse_url("out/").is_none());
    }
}
