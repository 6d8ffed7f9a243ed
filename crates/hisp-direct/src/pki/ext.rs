//! DER for the certificate and CRL extensions that the `openssl` crate has no builder for
//! (CRL distribution points, authority information access) and for the authority key
//! identifier, which a CRL needs without an X509v3 context. Written with our own DER writer
//! rather than `X509Extension::new_nid`, whose config mini-language is deprecated and would
//! reinterpret commas and `@` inside a URL.

use openssl::asn1::{Asn1Object, Asn1OctetString};
use openssl::error::ErrorStack;
use openssl::x509::X509Extension;

use crate::asn1::writer::{cons, oid, seq, tlv};

/// id-ce-authorityKeyIdentifier (RFC 5280 §4.2.1.1).
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
/// id-ce-cRLDistributionPoints (RFC 5280 §4.2.1.13).
const OID_CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";
/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
const OID_AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
/// id-ad-caIssuers 1.3.6.1.5.5.7.48.2, content octets.
const AD_CA_ISSUERS: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];

/// Context-specific tag [0], constructed.
const CTX0_CONS: u8 = 0xa0;
/// Context-specific tag [0], primitive: keyIdentifier in AuthorityKeyIdentifier.
const CTX0_PRIM: u8 = 0x80;
/// GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String.
const GN_URI: u8 = 0x86;

/// authorityKeyIdentifier carrying only the keyIdentifier, non-critical as RFC 5280 §4.2.1.1
/// requires.
pub(super) fn authority_key_id(key_id: &[u8]) -> Result<X509Extension, ErrorStack> {
    non_critical(OID_AUTHORITY_KEY_ID, &seq(&[&tlv(CTX0_PRIM, key_id)]))
}

/// cRLDistributionPoints with one distribution point whose fullName is `uri`.
pub(super) fn crl_distribution_point(uri: &str) -> Result<X509Extension, ErrorStack> {
    // DistributionPoint.distributionPoint is [0] around a CHOICE, so that tag is explicit
    // (X.680 §31.2.7); fullName [0] inside it is implicit over GeneralNames.
    let full_name = cons(CTX0_CONS, &[&tlv(GN_URI, uri.as_bytes())]);
    let point_name = cons(CTX0_CONS, &[&full_name]);
    non_critical(OID_CRL_DISTRIBUTION_POINTS, &seq(&[&seq(&[&point_name])]))
}

/// authorityInfoAccess with one caIssuers access description pointing at `uri`.
pub(super) fn ca_issuers(uri: &str) -> Result<X509Extension, ErrorStack> {
    let access = seq(&[&oid(AD_CA_ISSUERS), &tlv(GN_URI, uri.as_bytes())]);
    non_critical(OID_AUTHORITY_INFO_ACCESS, &seq(&[&access]))
}

fn non_critical(extension_oid: &str, der: &[u8]) -> Result<X509Extension, ErrorStack> {
    let object = Asn1Object::from_str(extension_oid)?;
    let value = Asn1OctetString::new_from_bytes(der)?;
    X509Extension::new_from_der(&object, false, &value)
}
