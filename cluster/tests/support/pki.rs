//! Certificate authorities and the certificates they sign (ECDSA P-256, two days), made with
//! openssl (Debian's `openssl`: scripts/setup) in a directory of their own.

use std::path::PathBuf;

pub struct Pki(tempfile::TempDir);

impl Pki {
    pub fn new() -> Pki {
        Pki(tempfile::tempdir().unwrap())
    }

    /// A file of the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }

    fn openssl(&self, args: &[&str]) {
        let done = std::process::Command::new("openssl")
            .args(args)
            .current_dir(self.0.path())
            .output()
            .expect("openssl runs (Debian's openssl: scripts/setup)");
        assert!(
            done.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }

    /// A self-signed authority: `<name>.pem` and `<name>.key`.
    pub fn authority(&self, name: &str) {
        let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
        let subject = format!("/CN={name}");
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
        args.extend([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ]);
        args.extend(["-keyout", &key, "-out", &cert]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign"]);
        self.openssl(&args);
    }

    /// A certificate `<name>.pem` (key `<name>.key`) signed by `authority`, naming `san`
    /// (openssl's subjectAltName syntax), for servers and clients; returns both paths.
    pub fn certificate(&self, name: &str, authority: &str, san: &str) -> (PathBuf, PathBuf) {
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={name}");
        let mut request = vec!["req", "-subj", &subject, "-keyout", &key, "-out", &csr];
        request.extend([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ]);
        self.openssl(&request);
        let extensions = format!("{name}.ext");
        let usage = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n";
        std::fs::write(
            self.path(&extensions),
            format!("subjectAltName={san}\n{usage}"),
        )
        .unwrap();
        let (ca, ca_key) = (format!("{authority}.pem"), format!("{authority}.key"));
        let mut signing = vec!["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key];
        signing.extend([
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &extensions,
        ]);
        self.openssl(&signing);
        (self.path(&cert), self.path(&key))
    }
}
