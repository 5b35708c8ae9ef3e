//! Certificates for TLS tests, made by `openssl` (Debian package `openssl`) in a temp dir: private
//! CAs and leaf certificates signed by them, EC P-256, valid for a day.

use std::path::Path;

/// Runs `openssl` with `args` in `dir`, panicking with its output on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A private CA: `<name>.pem` and `<name>.key` in `dir`.
pub fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC,
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "1",
                "-subj",
                &format!("/CN=upgrade-gate test CA {name}"),
            ],
        ]
        .concat(),
    );
}

/// `<who>.pem` and `<who>.key` in `dir`, signed by the CA `<ca>.pem`, with `extensions` in
/// openssl's `-extfile` syntax (e.g. `subjectAltName=IP:127.0.0.1`).
pub fn signed(dir: &Path, ca: &str, who: &str, extensions: &str) {
    let ext = format!("{who}.ext");
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl(
        dir,
        &[
            &["req"][..],
            &EC,
            &[
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN={who}"),
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{who}.pem"),
            "-days",
            "1",
            "-extfile",
            &ext,
        ],
    );
}

/// What a server on 127.0.0.1 needs in its certificate.
pub const LOOPBACK_SERVER: &str = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";

/// A private CA (`ca.pem`), a server certificate for 127.0.0.1 (`server.pem`, `server.key`) and
/// a client certificate (`client.pem`, `client.key`), both signed by it.
pub fn certificates(dir: &Path) {
    ca(dir, "ca");
    signed(dir, "ca", "server", LOOPBACK_SERVER);
    signed(dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
}
