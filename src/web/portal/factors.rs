//! The portal's hardware-token activation (serial number and one code) and its security-questions page (pick questions, answer them; never shown back).

use axum::extract::State;
use axum::response::Response;

use super::{Done, Portal, PortalForm, What, field, finish, log};
use crate::mfa::Method;
use crate::mfa::questions::MAX_ANSWER_CHARS;
use crate::mfa::registration;
use crate::portal::actions::Deps;
use crate::portal::factors::{self, MAX_SERIAL};
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp, PageLang};

const SWITCHED_OFF: &str = "Security questions are switched off.";

fn deps<'a>(ctx: &'a AppContext, mfa: &'a crate::mfa::settings::MfaSettings) -> Deps<'a> {
    Deps {
        store: ctx.store.as_ref(),
        secrets: &ctx.secrets,
        mfa,
        now: ctx.clock.unix(),
    }
}

/// POST /portal/token: activates the user's assigned hardware token (`serial`, `code`).
pub(super) async fn token_activate(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    let (serial, code) = (field(&form, "serial"), field(&form, "code"));
    let result = factors::activate_token(&d, &p.session, serial, code).await;
    let mut what = What::new("portal.activate_token", Some("oath"));
    // The serial the user typed, for the admins (bounded, one line); never the code.
    what.detail = Some(format!(
        "serial {}",
        crate::audit::shorten(serial, MAX_SERIAL)
    ));
    finish(&ctx, &lang, &p, &ip, what, result.map(|_| Done::Token)).await
}

/// GET /portal/questions: the questions to pick and answer (when switched on).
pub(super) async fn questions_page(
    State(ctx): State<AppState>,
    lang: PageLang,
    p: Portal,
) -> Result<Response, WebError> {
    render_questions(&ctx, &lang, &p, None).await
}

async fn render_questions(
    ctx: &AppContext,
    lang: &PageLang,
    p: &Portal,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let mfa = &policy.mfa;
    if !mfa.methods.contains(&Method::Questions) {
        return Err(WebError::not_found(SWITCHED_OFF));
    }
    let reg = registration::load(ctx.store.as_ref(), &p.session.user).await?;
    let set = crate::mfa::questions::usable(&reg.security_answers, mfa).len();
    let slots: Vec<usize> = (0..mfa.questions_setup as usize).collect();
    let res = ctx.page(lang, "portal_questions.html", minijinja::context! {
        title => crate::i18n::msgid("Security questions"), csrf => p.session.csrf.clone(),
        questions => mfa.security_questions.clone(), slots => slots, needed => mfa.questions_setup,
        answers_set => set, max_answer => MAX_ANSWER_CHARS, error => error,
    });
    Ok(super::form_page(res, error))
}

/// The (question, answer) pairs posted as `q<i>` (an index into the admin's questions) and
/// `a<i>`; a slot with no answer is skipped (so too few answers is "answer at least …"),
/// an unknown index keeps its text, which `set_answers` refuses.
fn answers(form: &[(String, String)], offered: &[String], slots: u32) -> Vec<(String, String)> {
    (0..slots.min(crate::mfa::questions::MAX_QUESTIONS as u32))
        .filter_map(|i| {
            let (q, a) = (field(form, &format!("q{i}")), field(form, &format!("a{i}")));
            let question = q.parse::<usize>().ok().and_then(|n| offered.get(n));
            let question = question.cloned().unwrap_or_else(|| q.to_owned());
            (!a.is_empty()).then(|| (question, a.to_owned()))
        })
        .collect()
}

/// POST /portal/questions: replaces the user's answers; a refusal shows the page again.
pub(super) async fn questions_save(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    let pairs = answers(
        &form,
        &policy.mfa.security_questions,
        policy.mfa.questions_setup,
    );
    let result = factors::set_answers(&d, &p.session, &pairs).await;
    let mut what = What::new("portal.set_questions", Some("questions"));
    match result {
        Ok(n) => {
            what.detail = Some(format!("{n} answers"));
            finish(&ctx, &lang, &p, &ip, what, Ok(Done::Questions)).await
        }
        Err(crate::portal::PortalError::Refused(m))
            if policy.mfa.methods.contains(&Method::Questions) =>
        {
            // The log reads like the CLI: "{needed}" filled in.
            let needed = policy.mfa.questions_setup.to_string();
            let reason = crate::i18n::fill(m, &[("needed", &needed)]);
            log(&ctx, &p, &ip, what, Err(&reason)).await?;
            render_questions(&ctx, &lang, &p, Some(m)).await
        }
        Err(e) => finish(&ctx, &lang, &p, &ip, what, Err(e)).await,
    }
}
