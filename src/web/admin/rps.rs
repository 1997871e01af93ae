//! The console's relying-party pages: trusts in force, import of SP metadata (paste, file, URL) with a preview and an explicit approve, options, removal, and the NetScaler commands.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::Value;

use super::{Admin, AdminForm, Done, csrf_check, form_value, outcome};
use crate::admin::AdminError;
use crate::admin::changes::Change;
use crate::admin::metadata_fetch::{FetchPolicy, fetch};
use crate::admin::netscaler;
use crate::admin::trusts::{self, Options};
use crate::rp::{Preset, RelyingParty, RpConfig, SignChoice};
use crate::saml::metadata::parse_sp_metadata;
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/rps", get(page))
        .route(
            "/admin/rps/import",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_FORM)),
        )
        .route("/admin/rps/import/{id}", get(preview).post(approve))
        .route("/admin/rps/{slug}", post(change))
}

/// Largest metadata document accepted from any source.
const MAX_METADATA: usize = crate::admin::metadata_fetch::MAX_METADATA;
/// The import form: one metadata document plus the form's own fields and multipart framing.
const MAX_IMPORT_FORM: usize = MAX_METADATA + 64 * 1024;

async fn page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let notice = done.done.map(|d| format!("Done: {d}."));
    render(&ctx, &admin, notice, None, StatusCode::OK).await
}

fn sign_name(s: SignChoice) -> &'static str {
    match s {
        SignChoice::Assertion => "assertion",
        SignChoice::Response => "response",
        SignChoice::Both => "both",
    }
}

fn rp_row(rp: &RelyingParty, sso: &str, slo: Option<&str>, overrides: Option<&RpConfig>) -> Value {
    let netscaler = rp.preset == Some(Preset::Netscaler)
        || rp.acs.iter().any(|a| a.url.ends_with("/cgi/samlauth"));
    let (commands, commands_error) = if netscaler {
        match netscaler::commands(rp, sso, slo) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let slug = rp.origin.strip_prefix("console:").map(str::to_owned);
    minijinja::context! {
        name => rp.name.clone(), entity_id => rp.entity_id.clone(),
        own_display_name => overrides.and_then(|c| c.display_name.clone()).unwrap_or_default(),
        acs => rp.acs.iter().map(|a| a.url.clone()).collect::<Vec<_>>(), slo => rp.slo.clone(),
        wsfed => rp.protocol == crate::rp::Protocol::Wsfed, token => rp.token.name(),
        sign_key => sign_name(rp.sign), name_id => String::from(rp.name_id_source.clone()), name_id_format => rp.name_id_format.clone(),
        attributes => rp.attributes.iter().map(|c| format!("{} ← {}", c.name, String::from(c.source.clone()))).collect::<Vec<_>>(),
        mfa_required => rp.mfa_required, enabled => rp.enabled, signed_requests => rp.require_signed_requests,
        lenient => rp.authn_context == crate::rp::AuthnContextMode::Lenient, origin => rp.origin.clone(),
        netscaler => netscaler, commands => commands, commands_error => commands_error, certs => rp.certs.len(),
        slug => slug, preset => rp.preset.map(|_| "netscaler"), claims_text => trusts::claims_text(&rp.attributes),
        authn_context => if rp.authn_context == crate::rp::AuthnContextMode::Lenient { "lenient" } else { "strict" },
        name_id_formats => trusts::NAMEID_FORMATS.to_vec(),
        allowed_formats => rp.name_id_formats.iter().map(|f| crate::rp::name_id::short_name(f).to_owned()).collect::<Vec<_>>(),
        listed_formats => overrides.and_then(|c| c.name_id_formats.as_ref()).map(|l| l.iter().map(|f| crate::rp::name_id::short_name(f).to_owned()).collect::<Vec<_>>()).unwrap_or_default(),
        own_entity_id => overrides.and_then(|c| c.entity_id.clone()).unwrap_or_default(),
        own_acs => overrides.map(|c| c.acs.join("\n")).unwrap_or_default(),
        own_slo => overrides.and_then(|c| c.slo.clone()).unwrap_or_default(),
        own_cert => overrides.and_then(|c| c.cert_pems.first().cloned()).unwrap_or_default(),
    }
}

async fn render(
    ctx: &AppContext,
    admin: &Admin,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let endpoints = crate::startup::endpoints(&ctx.config);
    let signing = ctx.signing().await;
    let stored = crate::rp::live::load_all(ctx.store.as_ref()).await?;
    let rows: Vec<Value> = ctx
        .registry()
        .await
        .all()
        .iter()
        .map(|rp| {
            let own = rp
                .origin
                .strip_prefix("console:")
                .and_then(|slug| stored.iter().find(|(s, _)| s == slug))
                .map(|(_, r)| &r.config);
            rp_row(rp, &endpoints.sso, endpoints.slo.as_deref(), own)
        })
        .collect();
    let mut res = ctx.render(
        "admin_rps.html",
        minijinja::context! {
            title => "Relying parties", page => "rps", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), rps => rows, entity_id => endpoints.entity_id, sso => endpoints.sso,
            thumbprint_sha1 => signing.current.thumbprint_sha1.clone(), thumbprint_sha256 => signing.current.thumbprint_sha256.clone(),
            not_after => signing.current.not_after.clone(), cert_file => netscaler::CERT_FILE, notice => notice, error => error,
        },
    );
    *res.status_mut() = status;
    Ok(res)
}

/// The parts of the import form.
#[derive(Default)]
struct ImportForm {
    csrf: String,
    pasted: String,
    url: String,
    file: Option<(String, Vec<u8>)>,
}

async fn read_import(mut multipart: Multipart) -> Result<ImportForm, (StatusCode, String)> {
    // Past the route's body limit the reader fails with 413; the admin reads why.
    let unreadable = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The metadata is larger than 1 MiB.".to_owned(),
        ),
        status => (status, format!("the form could not be read: {e}")),
    };
    let mut f = ImportForm::default();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(unreadable)?;
        if bytes.len() > MAX_METADATA {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "The metadata is larger than 1 MiB.".into(),
            ));
        }
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "csrf" => f.csrf = text(),
            "metadata" => f.pasted = text(),
            "url" => f.url = text(),
            "file" if !bytes.is_empty() => {
                f.file = Some((file_name.unwrap_or_else(|| "upload".into()), bytes.to_vec()))
            }
            _ => {}
        }
    }
    Ok(f)
}

/// POST /admin/rps/import: pasted XML, an uploaded file or a URL; kept for the preview.
async fn import(
    State(ctx): State<AppState>,
    admin: Admin,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let again = async |m, status| render(&ctx, &admin, None, Some(m), status).await;
    let form = match read_import(multipart).await {
        Ok(f) => f,
        Err((status, m)) => return again(m, status).await,
    };
    csrf_check(&admin, &[("csrf".to_owned(), form.csrf.clone())])?;
    let (xml, source) = match metadata_of(&ctx, form).await {
        Ok(found) => found,
        Err(m) => return again(m, StatusCode::BAD_REQUEST).await,
    };
    let result = trusts::import(ctx.store.as_ref(), xml, &source, &admin.session.user).await;
    let what = format!("metadata import from {source}");
    let done = |id| format!("/admin/rps/import/{id}");
    outcome(&admin, &what, result, done, async |m| {
        again(m, StatusCode::BAD_REQUEST).await
    })
    .await
}

/// The metadata the import form brings (a file first, then pasted text, then a URL to
/// fetch) and where it came from; `Err` is the message for the admin.
async fn metadata_of(ctx: &AppContext, form: ImportForm) -> Result<(String, String), String> {
    if let Some((name, bytes)) = form.file {
        let text = String::from_utf8(bytes).map_err(|_| "The file is not UTF-8 text.")?;
        Ok((text, format!("file {name}")))
    } else if !form.pasted.trim().is_empty() {
        Ok((form.pasted, "pasted XML".to_owned()))
    } else if !form.url.trim().is_empty() {
        let policy = FetchPolicy::from_config(&ctx.config.admin);
        let text = fetch(&form.url, &policy).await.map_err(|e| e.to_string())?;
        Ok((text, format!("URL {}", form.url.trim())))
    } else {
        Err("Paste the metadata, choose a file or give its URL.".to_owned())
    }
}

/// GET /admin/rps/import/{id}: what the metadata says, what changes, and the options.
async fn preview(
    State(ctx): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    preview_page(&ctx, &admin, &id, None, StatusCode::OK).await
}

async fn preview_page(
    ctx: &AppContext,
    admin: &Admin,
    id: &str,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let Some(pending) = trusts::pending(ctx.store.as_ref(), id).await? else {
        return Err(WebError::not_found(
            "This import has expired or was already applied. Import the metadata again.",
        ));
    };
    let Ok(md) = parse_sp_metadata(&pending.xml) else {
        return Err(WebError::bad_request(
            "The imported metadata no longer reads.",
        ));
    };
    let new = trusts::summary(&md);
    let file_trust = ctx
        .rps
        .files()
        .find(&md.entity_id)
        .map(|rp| rp.origin.clone());
    let existing = trusts::by_entity(ctx.store.as_ref(), &md.entity_id).await?;
    let (gone, added, current) = against(existing.as_ref(), &new);
    let preset_default = md.acs.iter().any(|a| a.url.ends_with("/cgi/samlauth"));
    let mut res = ctx.render(
        "admin_rp_import.html",
        minijinja::context! {
            title => "Approve relying party", page => "rps", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), id => id, source => pending.source,
            facts => new.iter().map(|(k, v)| minijinja::context! { k => k, v => v }).collect::<Vec<_>>(),
            update => existing.is_some(), gone => gone, added => added, file_trust => file_trust, error => error,
            name => current.as_ref().map_or_else(|| md.entity_id.clone(), |rp| rp.name.clone()),
            netscaler => current.as_ref().map_or(preset_default, |rp| rp.preset == Some(Preset::Netscaler)),
            sign => current.as_ref().map(|rp| sign_name(rp.sign)).unwrap_or(if preset_default { "both" } else { "assertion" }),
            mfa_required => current.as_ref().is_none_or(|rp| rp.mfa_required),
            enabled => current.as_ref().is_none_or(|rp| rp.enabled),
            wsfed => md.protocol == crate::saml::metadata::SpProtocol::Wsfed,
            token => current.as_ref().map_or("saml11", |rp| rp.token.name()),
        },
    );
    *res.status_mut() = status;
    Ok(res)
}

/// What an import changes in the console trust it updates (facts gone, facts added), and
/// that trust as it stands; nothing for a new trust.
fn against(
    existing: Option<&(String, crate::rp::live::StoredRp)>,
    new: &[(String, String)],
) -> (Vec<String>, Vec<String>, Option<RelyingParty>) {
    match existing {
        Some((slug, old)) => {
            let old_md = parse_sp_metadata(&old.metadata_xml).ok();
            let old_summary = old_md.as_ref().map(trusts::summary).unwrap_or_default();
            let (g, a) = trusts::diff(&old_summary, new);
            (g, a, old.build(slug).ok())
        }
        None => (Vec::new(), Vec::new(), None),
    }
}

/// The signing choice a form field names; none when left empty.
fn sign_of(field: Option<&str>) -> Result<Option<SignChoice>, String> {
    Ok(match field {
        None | Some("") => None,
        Some("assertion") => Some(SignChoice::Assertion),
        Some("response") => Some(SignChoice::Response),
        Some("both") => Some(SignChoice::Both),
        Some(other) => return Err(format!("`{other}` is not a signing choice")),
    })
}

/// The preset a form field names; none for "none" or nothing.
fn preset_of(field: Option<&str>) -> Result<Option<Preset>, String> {
    match field {
        Some("netscaler") => Ok(Some(Preset::Netscaler)),
        None | Some("") | Some("none") => Ok(None),
        Some(other) => Err(format!("`{other}` is not a preset")),
    }
}

/// The AuthnContext mapping a form field names.
fn authn_context_of(field: Option<&str>) -> Result<Option<crate::rp::AuthnContextMode>, String> {
    match field {
        None => Ok(None),
        Some("strict") => Ok(Some(crate::rp::AuthnContextMode::Strict)),
        Some("lenient") => Ok(Some(crate::rp::AuthnContextMode::Lenient)),
        Some(other) => Err(format!("`{other}` is not an AuthnContext mapping")),
    }
}

/// The WS-Federation token type a form field names.
fn token_of(field: Option<&str>) -> Result<Option<crate::rp::TokenType>, String> {
    match field {
        None => Ok(None),
        Some("saml11") => Ok(Some(crate::rp::TokenType::Saml11)),
        Some("saml2") => Ok(Some(crate::rp::TokenType::Saml2)),
        Some(other) => Err(format!("`{other}` is not a token type (saml11 or saml2)")),
    }
}

/// The NameID formats a request may ask for, from the form's checkboxes; `None` when the
/// form did not show them (the import preview), so the trust keeps what it has. None checked
/// means the default: all four.
fn allowed_formats_of(form: &[(String, String)]) -> Result<Option<Vec<String>>, String> {
    if form_value(form, "allowed_formats_shown").is_none() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (_, f) in form.iter().filter(|(k, _)| k == "allowed_format") {
        if !trusts::NAMEID_FORMATS.contains(&f.as_str()) {
            return Err(format!("`{f}` is not a NameID format Tessera issues"));
        }
        if !out.contains(f) {
            out.push(f.clone());
        }
    }
    Ok(Some(out))
}

/// The trust options from a posted form; `Err` is the message for the admin.
fn options_of(form: &[(String, String)]) -> Result<Options, String> {
    let field = |k: &str| form_value(form, k).map(str::trim);
    let sign = sign_of(field("sign"))?;
    let preset = preset_of(field("preset"))?;
    let name_id_source = match field("name_id_source") {
        None => None,
        Some(s) => Some(
            crate::rp::ClaimSource::try_from(s.to_owned()).map_err(|e| format!("NameID: {e}"))?,
        ),
    };
    let authn_context = authn_context_of(field("authn_context"))?;
    let claims = match form_value(form, "claims") {
        None => None,
        Some(text) => Some(trusts::parse_claims(text)?),
    };
    let lines = |k: &str| {
        form_value(form, k).map(|v| {
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    };
    let optional = |k: &str| field(k).map(|v| (!v.is_empty()).then(|| v.to_owned()));
    let cert_pems = form_value(form, "cert_pem").map(|v| {
        let v = v.trim();
        if v.is_empty() {
            Vec::new()
        } else {
            vec![v.replace("\r\n", "\n")]
        }
    });
    Ok(Options {
        token: token_of(field("token"))?,
        entity_id: optional("entity_id"),
        acs: lines("acs"),
        slo: optional("slo"),
        cert_pems,
        name: field("name").map(str::to_owned),
        display_name: field("display_name").map(|d| Some(d.to_owned())),
        preset,
        sign,
        mfa_required: field("mfa_required").is_some(),
        enabled: field("enabled").is_some(),
        name_id_source,
        name_id_format: field("name_id_format").map(str::to_owned),
        name_id_formats: allowed_formats_of(form)?,
        authn_context,
        claims,
    })
}

/// POST /admin/rps/import/{id}: the admin approves; only now is the trust stored.
async fn approve(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
    let again = async |m| preview_page(&ctx, &admin, &id, Some(m), StatusCode::BAD_REQUEST).await;
    let options = match options_of(&form) {
        Ok(o) => o,
        Err(m) => return again(m).await,
    };
    let (files, actor, now) = (ctx.rps.files(), admin.actor(&ip), ctx.clock.unix());
    let result = trusts::approve(ctx.store.as_ref(), &files, &actor, now, &id, &options).await;
    outcome(
        &admin,
        "trust approval",
        result,
        |c| trusts_done(&ctx, c),
        again,
    )
    .await
}

/// Where a changed trust leads: the trusts page, with the registry re-read.
fn trusts_done(ctx: &AppContext, c: Change) -> String {
    ctx.rps.invalidate();
    format!("/admin/rps?done={}", c.action)
}

/// POST /admin/rps/{slug}: `action=options` (name, preset, signing, MFA, enabled) or
/// `action=delete`, for a console trust.
async fn change(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(slug): Path<String>,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
    let now = ctx.clock.unix();
    let actor = admin.actor(&ip);
    let action = form_value(&form, "action");
    let result = match action {
        Some("delete") => trusts::delete(ctx.store.as_ref(), &actor, now, &slug).await,
        Some("options") => match options_of(&form) {
            Ok(o) => {
                trusts::set_options(ctx.store.as_ref(), &ctx.rps.files(), &actor, now, &slug, &o)
                    .await
            }
            Err(m) => Err(AdminError::Refused(m)),
        },
        _ => Err(AdminError::Refused("Unknown action.".into())),
    };
    let again = async |m| render(&ctx, &admin, None, Some(m), StatusCode::BAD_REQUEST).await;
    let what = format!("trust {slug}");
    outcome(&admin, &what, result, |c| trusts_done(&ctx, c), again).await
}

#[cfg(test)]
mod tests {
    use super::allowed_formats_of;
    use crate::rp::{NAMEID_PERSISTENT, NAMEID_TRANSIENT};

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn allowed_formats_come_from_the_ticked_boxes_only_when_shown() {
        assert_eq!(allowed_formats_of(&form(&[("name", "x")])), Ok(None));
        let shown = ("allowed_formats_shown", "1");
        assert_eq!(allowed_formats_of(&form(&[shown])), Ok(Some(Vec::new())));
        let ticked = form(&[
            shown,
            ("allowed_format", NAMEID_TRANSIENT),
            ("allowed_format", NAMEID_PERSISTENT),
            ("allowed_format", NAMEID_TRANSIENT),
        ]);
        assert_eq!(
            allowed_formats_of(&ticked),
            Ok(Some(vec![
                NAMEID_TRANSIENT.into(),
                NAMEID_PERSISTENT.into()
            ]))
        );
        for bad in [
            "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
            "transient",
            "",
            "<script>",
        ] {
            let f = form(&[shown, ("allowed_format", bad)]);
            assert!(allowed_formats_of(&f).is_err(), "{bad}");
        }
    }
}
