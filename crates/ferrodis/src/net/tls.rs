//! TLS as Redis configures it (`tls-*` directives), on rustls with the ring provider.
//!
//! One [`Tls`] holds the server side (the `tls-port` listener, the cluster bus's listener with
//! `tls-cluster`) and the client side (a replica's link with `tls-replication`, the cluster
//! bus's outbound links, a sentinel's links). It is built from the configuration at start and
//! rebuilt on `CONFIG SET tls-...`; a failed build leaves the old one in place.
//!
//! Differences from OpenSSL that a user may meet: TLSv1 and TLSv1.1 do not exist in rustls,
//! `tls-ciphers` understands the names of the TLS 1.2 suites rustls has (and `DEFAULT`, `HIGH`,
//! `ALL`, `!name`), and an encrypted private key (`tls-key-file-pass`) is refused. As with Redis,
//! a peer's certificate is checked against the CA but not against the host name.

use crate::config::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion};
use std::sync::Arc;

/// The TLS contexts the configuration describes.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// None without CA certificates (only possible with `tls-auth-clients no` and no
    /// replication or cluster TLS): nothing could be verified, so nothing connects out.
    pub connector: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// Whether the configuration asks for TLS anywhere (and so needs certificates).
pub fn wanted(cfg: &Config) -> bool {
    cfg.get_int("tls-port") != 0 || yes(cfg, "tls-replication") || yes(cfg, "tls-cluster")
}

fn yes(cfg: &Config, name: &str) -> bool {
    cfg.get(name).as_deref() == Some("yes")
}

fn nonempty(cfg: &Config, name: &str) -> Option<String> {
    cfg.get(name).filter(|v| !v.is_empty())
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| e.to_string())
}

fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = read(path)?;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&data).collect::<Result<_, _>>().map_err(|e| format!("{:?}", e))?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| format!("{:?}", e))
}

/// The CA certificates of `tls-ca-cert-file` and of every file in `tls-ca-cert-dir`.
fn load_roots(cfg: &Config) -> Result<Option<RootCertStore>, String> {
    let file = nonempty(cfg, "tls-ca-cert-file");
    let dir = nonempty(cfg, "tls-ca-cert-dir");
    if file.is_none() && dir.is_none() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    let mut add = |certs: Vec<CertificateDer<'static>>| -> Result<(), String> {
        for c in certs {
            roots.add(c).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    if let Some(f) = &file {
        add(load_certs(f).map_err(|e| format!("Failed to configure CA certificate(s) file/directory: {}: {}", f, e))?)?;
    }
    if let Some(d) = &dir {
        let entries = std::fs::read_dir(d).map_err(|e| format!("Failed to configure CA certificate(s) file/directory: {}: {}", d, e))?;
        for e in entries.flatten() {
            if let Some(p) = e.path().to_str() {
                if let Ok(certs) = load_certs(p) {
                    add(certs)?;
                }
            }
        }
    }
    Ok(Some(roots))
}

/// `tls-protocols`: empty means TLSv1.2 and TLSv1.3, as Redis's default.
pub fn protocols(spec: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let invalid = || "Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.".to_string();
    if spec.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for p in spec.split_whitespace() {
        match p.to_ascii_lowercase().as_str() {
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1" | "tlsv1.1" => {}
            _ => return Err(invalid()),
        }
    }
    if out.is_empty() {
        return Err("None of the tls-protocols are supported by this build (TLSv1 and TLSv1.1 are not; use TLSv1.2 or TLSv1.3).".into());
    }
    Ok(out)
}

/// The OpenSSL names of the suites rustls offers (TLS 1.3 as `tls-ciphersuites` spells them,
/// TLS 1.2 as `tls-ciphers` does).
fn openssl_name(s: &rustls::SupportedCipherSuite) -> String {
    let n = format!("{:?}", s.suite());
    if let Some(rest) = n.strip_prefix("TLS13_") {
        return format!("TLS_{}", rest);
    }
    // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 -> ECDHE-RSA-AES128-GCM-SHA256
    let n = n.trim_start_matches("TLS_").replace("_WITH_", "_").replace("AES_128", "AES128").replace("AES_256", "AES256");
    let n = n.replace("CHACHA20_POLY1305_SHA256", "CHACHA20_POLY1305");
    n.replace('_', "-")
}

/// The provider with the suites that `tls-ciphers` (TLS 1.2) and `tls-ciphersuites` (TLS 1.3)
/// allow.
pub fn provider(ciphers: &str, suites13: &str) -> Result<CryptoProvider, String> {
    let base = rustls::crypto::ring::default_provider();
    let pick = |spec: &str, tls13: bool| -> Result<Vec<rustls::SupportedCipherSuite>, String> {
        let all: Vec<rustls::SupportedCipherSuite> = base.cipher_suites.iter().copied().filter(|s| s.tls13().is_some() == tls13).collect();
        if spec.trim().is_empty() {
            return Ok(all);
        }
        let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::new();
        for tok in spec.split([':', ',', ' ']).filter(|t| !t.is_empty()) {
            let (neg, name) = match tok.strip_prefix('!').or_else(|| tok.strip_prefix('-')) {
                Some(n) => (true, n),
                None => (false, tok.strip_prefix('+').unwrap_or(tok)),
            };
            let matching: Vec<rustls::SupportedCipherSuite> = match name.to_ascii_uppercase().as_str() {
                "DEFAULT" | "HIGH" | "ALL" => all.clone(),
                n => all.iter().copied().filter(|s| openssl_name(s).eq_ignore_ascii_case(n)).collect(),
            };
            if neg {
                chosen.retain(|s| !matching.iter().any(|m| m.suite() == s.suite()));
            } else {
                for m in matching {
                    if !chosen.iter().any(|s| s.suite() == m.suite()) {
                        chosen.push(m);
                    }
                }
            }
        }
        Ok(chosen)
    };
    let mut suites = pick(suites13, true)?;
    suites.extend(pick(ciphers, false)?);
    if suites.is_empty() {
        return Err(format!("Failed to configure ciphers: {} / ciphersuites: {}: no cipher match", ciphers, suites13));
    }
    Ok(CryptoProvider { cipher_suites: suites, ..base })
}

/// Checks the peer's chain against the CA as OpenSSL's SSL_VERIFY_PEER does for Redis, without
/// the host-name check Redis does not make either (replicas and cluster nodes are reached by IP).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Builds the contexts from the `tls-*` directives; the error is the line Redis would log.
pub fn configure(cfg: &Config) -> Result<Arc<Tls>, String> {
    let cert_file = nonempty(cfg, "tls-cert-file").ok_or("No tls-cert-file configured!")?;
    let key_file = nonempty(cfg, "tls-key-file").ok_or("No tls-key-file configured!")?;
    if nonempty(cfg, "tls-key-file-pass").is_some() || nonempty(cfg, "tls-client-key-file-pass").is_some() {
        return Err("Encrypted private keys (tls-key-file-pass) are not supported: decrypt the key file first.".into());
    }
    let certs = load_certs(&cert_file).map_err(|e| format!("Failed to load certificate: {}: {}", cert_file, e))?;
    let key = load_key(&key_file).map_err(|e| format!("Failed to load private key: {}: {}", key_file, e))?;
    let auth = cfg.get("tls-auth-clients").unwrap_or_default();
    let roots = load_roots(cfg)?;
    if roots.is_none() && (auth != "no" || yes(cfg, "tls-cluster") || yes(cfg, "tls-replication")) {
        return Err(
            "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!"
                .into(),
        );
    }
    let roots = Arc::new(roots.unwrap_or_else(RootCertStore::empty));
    let versions = protocols(&cfg.get("tls-protocols").unwrap_or_default())?;
    let provider = Arc::new(provider(&cfg.get("tls-ciphers").unwrap_or_default(), &cfg.get("tls-ciphersuites").unwrap_or_default())?);

    // The server side.
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions).map_err(|e| e.to_string())?;
    let builder = match auth.as_str() {
        "no" => builder.with_no_client_auth(),
        _ => {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let v = if auth == "optional" { v.allow_unauthenticated() } else { v };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    let mut server = builder.with_single_cert(certs.clone(), key.clone_key()).map_err(|e| match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(ref o)) if format!("{:?}", o).contains("UnsupportedCertVersion") => {
            format!(
                "Failed to load certificate: {}: an X.509 v1 certificate is not supported; make a v3 one (openssl x509 -req ... -extfile with a keyUsage line)",
                cert_file
            )
        }
        e => format!("Failed to load private key: {}: {}", key_file, e),
    })?;
    server.session_storage = match yes(cfg, "tls-session-caching") {
        true => rustls::server::ServerSessionMemoryCache::new(cfg.get_int("tls-session-cache-size").clamp(1, 1 << 24) as usize),
        false => Arc::new(rustls::server::NoServerSessionStorage {}),
    };
    server.ignore_client_order = yes(cfg, "tls-prefer-server-ciphers");

    // The client side: tls-client-cert-file / -key-file, or else the server's own pair.
    let (ccerts, ckey) = match (nonempty(cfg, "tls-client-cert-file"), nonempty(cfg, "tls-client-key-file")) {
        (Some(c), Some(k)) => (
            load_certs(&c).map_err(|e| format!("Failed to load certificate: {}: {}", c, e))?,
            load_key(&k).map_err(|e| format!("Failed to load private key: {}: {}", k, e))?,
        ),
        _ => (certs, key),
    };
    let connector = match rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build() {
        Ok(v) => {
            let client = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&versions)
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(v)))
                .with_client_auth_cert(ccerts, ckey)
                .map_err(|e| e.to_string())?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(client)))
        }
        Err(_) => None,
    };
    Ok(Arc::new(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)), connector }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_follow_redis_names() {
        assert_eq!(protocols("").unwrap().len(), 2);
        assert_eq!(protocols("TLSv1.2").unwrap().len(), 1);
        assert_eq!(protocols("TLSv1.1 TLSv1.3").unwrap().len(), 1);
        assert!(protocols("TLSv1.1").is_err());
        assert!(protocols("SSLv3").unwrap_err().starts_with("Invalid tls-protocols"));
    }

    #[test]
    fn cipher_names_are_openssl_names() {
        let p = provider("", "").unwrap();
        let names: Vec<String> = p.cipher_suites.iter().map(openssl_name).collect();
        assert!(names.contains(&"TLS_AES_256_GCM_SHA384".to_string()), "{:?}", names);
        assert!(names.contains(&"ECDHE-RSA-AES128-GCM-SHA256".to_string()), "{:?}", names);
        assert!(names.contains(&"ECDHE-ECDSA-CHACHA20-POLY1305".to_string()), "{:?}", names);
        let p = provider("ECDHE-RSA-AES256-GCM-SHA384", "TLS_AES_128_GCM_SHA256").unwrap();
        let names: Vec<String> = p.cipher_suites.iter().map(openssl_name).collect();
        assert_eq!(names, vec!["TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]);
        let p = provider("DEFAULT:!ECDHE-RSA-AES256-GCM-SHA384", "").unwrap();
        assert!(!p.cipher_suites.iter().map(openssl_name).any(|n| n == "ECDHE-RSA-AES256-GCM-SHA384"));
        assert!(provider("NOPE", "NOPE-EITHER").is_err());
    }
}
