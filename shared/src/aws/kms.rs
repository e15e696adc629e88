//! `SecretSealer` on KMS: Encrypt/Decrypt under one key with an encryption context.

use crate::domain::integration::Sealed;
use crate::error::{Dependency, Result};
use crate::ports::{SealContext, SecretSealer};
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::Client;
use secrecy::{ExposeSecret, SecretString};

pub struct KmsSealer {
    client: Client,
    key_id: String,
}

impl KmsSealer {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

fn context(ctx: SealContext<'_>) -> std::collections::HashMap<String, String> {
    [
        (
            "integration_id".to_owned(),
            ctx.integration_id.as_str().to_owned(),
        ),
        (
            "aws_account_id".to_owned(),
            ctx.aws_account_id.as_str().to_owned(),
        ),
    ]
    .into()
}

#[async_trait]
impl SecretSealer for KmsSealer {
    async fn seal(&self, secret: &SecretString, ctx: SealContext<'_>) -> Result<Sealed> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(secret.expose_secret().as_bytes()))
            .set_encryption_context(Some(context(ctx)))
            .send()
            .await
            .map_err(|e| super::unavailable(Dependency::Kms, "Encrypt", e))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| crate::error::Error::internal("KMS Encrypt returned no ciphertext"))?;
        Ok(Sealed(blob.into_inner()))
    }

    async fn open(&self, sealed: &Sealed, ctx: SealContext<'_>) -> Result<SecretString> {
        let out = self
            .client
            .decrypt()
            // Pinning the key id makes KMS refuse ciphertext from any other key.
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(sealed.0.clone()))
            .set_encryption_context(Some(context(ctx)))
            .send()
            .await
            .map_err(|e| {
                // KMS refuses a ciphertext that is not this context's: no retry helps.
                let refused = e.as_service_error().is_some_and(|s| {
                    s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception()
                });
                if refused {
                    crate::error::Error::SecretUnreadable {
                        source: Some(Box::new(e)),
                    }
                } else {
                    super::unavailable(Dependency::Kms, "Decrypt", e)
                }
            })?;
        let plain = out
            .plaintext
            .ok_or_else(|| crate::error::Error::internal("KMS Decrypt returned no plaintext"))?;
        let text = String::from_utf8(plain.into_inner())
            .map_err(|e| crate::error::Error::internal_from("decrypted secret is not UTF-8", e))?;
        Ok(SecretString::from(text))
    }
}

/// `KeyDeriver` on KMS: GenerateMac (HMAC-SHA-256) of the label under the platform's
/// HMAC key. The key never leaves KMS; the MAC of a fixed label is the derived key.
pub struct KmsKeyDeriver {
    client: Client,
    key_id: String,
}

impl KmsKeyDeriver {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

#[async_trait]
impl crate::ports::KeyDeriver for KmsKeyDeriver {
    async fn derive(&self, label: &str) -> Result<secrecy::SecretBox<[u8; 32]>> {
        let out = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(label.as_bytes()))
            .send()
            .await
            .map_err(|e| super::unavailable(Dependency::Kms, "GenerateMac", e))?;
        let mac = out
            .mac
            .ok_or_else(|| crate::error::Error::internal("KMS GenerateMac returned no MAC"))?;
        let bytes: [u8; 32] = mac.as_ref().try_into().map_err(|_| {
            crate::error::Error::internal("KMS GenerateMac returned no 32-byte MAC")
        })?;
        Ok(secrecy::SecretBox::new(Box::new(bytes)))
    }
}
