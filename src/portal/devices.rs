//! Adding a phone number or a push device in the portal: started through `mfa::delivery` (`Purpose::Enroll` under the portal session's id), confirmed by the texted code, the answered call or the approved push, then registered.

use super::PortalError;
use super::actions::{Deps, counted};
use super::session::{PortalSession, Setup};
use crate::mfa::challenge::{self, mac_eq};
use crate::mfa::delivery::{self, Channel, Purpose, Refused, Sender, code_mac};
use crate::mfa::registration::{self, Phone, PhoneKind, PhoneSource, PushDevice};
use crate::mfa::{Challenge, ChallengeStatus, Method};

const BAD_NUMBER: &str =
    "That does not look like a phone number. Include the country code, e.g. +1 555 0100.";
const NOT_SENT: &str = "We could not reach that number. Check it and try again.";
const PUSH_NOT_SENT: &str = "We could not send a notification.";
const NOT_OFFERED: &str = "Your organisation does not offer this method.";
const NOT_ANSWERED: &str =
    "The call has not been answered yet. Answer it and press the pound key, then try again.";
const SETUP_EXPIRED: &str = "The setup expired. Start again.";
const PUSH_NOT_APPROVED: &str =
    "The test notification was not approved. Try again or choose another way.";

/// Where a pending setup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the user (a code to type, a call or push to answer).
    Waiting,
    /// Confirmed and registered; the setup is over.
    Done,
}

fn refused_delivery(
    e: Refused,
    bad_destination: &'static str,
    failed: &'static str,
) -> PortalError {
    match e {
        Refused::Store(e) => PortalError::Store(e),
        Refused::Destination(_) => PortalError::Refused(bad_destination),
        Refused::Gateway(e) => {
            tracing::warn!(error = %e, "portal enrollment delivery failed");
            PortalError::Refused(failed)
        }
        Refused::Random(e) => {
            tracing::error!(error = %e, "random generator failed");
            PortalError::Refused(failed)
        }
    }
}

/// Texts a code to, or calls, `number` for the user to confirm it; `replaces` is the enrolled
/// number it is to replace (changing a number), if any.
pub async fn start_phone(
    sender: &Sender<'_>,
    s: &mut PortalSession,
    number: &str,
    channel: Channel,
    kind: PhoneKind,
    replaces: Option<String>,
) -> Result<(), PortalError> {
    if channel == Channel::Push || !sender.mfa.methods.contains(&channel.method()) {
        return Err(PortalError::Refused(NOT_OFFERED));
    }
    let purpose = Purpose::Enroll { flow_id: &s.id };
    let c = delivery::start(sender, channel, number, &s.user, purpose)
        .await
        .map_err(|e| refused_delivery(e, BAD_NUMBER, NOT_SENT))?;
    s.setup = Some(Setup::Phone {
        number: c.phone.unwrap_or_default(),
        challenge: c.id,
        // A number that took a text can take texts; a called one is what the user said.
        kind: if channel == Channel::Text {
            PhoneKind::Mobile
        } else {
            kind
        },
        replaces,
    });
    Ok(())
}

/// Confirms the pending phone: the texted code (counted against the user's code budget), or
/// the answered call. Registers the number when it is confirmed.
pub async fn confirm_phone(
    d: &Deps<'_>,
    s: &mut PortalSession,
    code: &str,
) -> Result<Progress, PortalError> {
    let Some(Setup::Phone {
        number,
        challenge: cid,
        kind,
        replaces,
    }) = s.setup.clone()
    else {
        return Err(PortalError::Refused(SETUP_EXPIRED));
    };
    let Some(c) = challenge::load(d.store, &cid).await? else {
        s.setup = None;
        return Err(PortalError::Refused(SETUP_EXPIRED));
    };
    match c.method {
        Method::Call => answered(s, &c)?,
        _ => texted_code_ok(d, &s.user, &c, code).await?,
    }
    let phone = Phone {
        number,
        kind,
        source: PhoneSource::Enrolled,
    };
    register_phone(d, &s.user, phone, replaces.as_deref()).await?;
    s.setup = None;
    Ok(Progress::Done)
}

/// A call confirms the number once answered with the pound key; denied or reported, the
/// setup is over.
fn answered(s: &mut PortalSession, c: &Challenge) -> Result<(), PortalError> {
    match c.status {
        ChallengeStatus::Approved => Ok(()),
        ChallengeStatus::Pending => Err(PortalError::Refused(NOT_ANSWERED)),
        _ => {
            s.setup = None;
            Err(PortalError::Refused(SETUP_EXPIRED))
        }
    }
}

/// The texted code, checked in constant time while fresh, after taking one attempt from the
/// user's code budget; a right code spends the challenge.
async fn texted_code_ok(
    d: &Deps<'_>,
    user: &str,
    c: &Challenge,
    code: &str,
) -> Result<(), PortalError> {
    let code = code.trim();
    let fresh = d.now <= c.created + i64::from(d.mfa.sms_code_lifetime_secs);
    let expected = c.code_hash.clone().unwrap_or_default();
    let mac = code_mac(&delivery::code_key(d.secrets), &c.id, code);
    counted(d, user, async || {
        let right = fresh && !code.is_empty() && mac_eq(&expected, &mac);
        let spent = right
            && challenge::resolve(d.store, &c.id, ChallengeStatus::Approved)
                .await?
                .is_some();
        Ok(spent)
    })
    .await
}

/// Adds the confirmed number (a change removes the number it replaces) and makes it the
/// default if the user had none.
async fn register_phone(
    d: &Deps<'_>,
    user: &str,
    phone: Phone,
    replaces: Option<&str>,
) -> Result<(), PortalError> {
    let method = match phone.kind {
        PhoneKind::Mobile => Method::Sms,
        PhoneKind::Office => Method::Call,
    };
    registration::update(d.store, user, |r| {
        if let Some(old) = replaces {
            r.phones
                .retain(|p| !(p.source == PhoneSource::Enrolled && p.number == old));
        }
        if !r.phones.iter().any(|p| p.number == phone.number) {
            r.phones.push(phone.clone());
        }
        r.default_method.get_or_insert(method);
    })
    .await?;
    Ok(())
}

/// Sends a first notification to a new topic; approving it registers the device.
pub async fn start_push(sender: &Sender<'_>, s: &mut PortalSession) -> Result<(), PortalError> {
    if !sender.mfa.methods.contains(&Method::Push) {
        return Err(PortalError::Refused(NOT_OFFERED));
    }
    let topic = delivery::random_hex(16)
        .map_err(|e| refused_delivery(Refused::Random(e), PUSH_NOT_SENT, PUSH_NOT_SENT))?;
    let purpose = Purpose::Enroll { flow_id: &s.id };
    let c = delivery::start(sender, Channel::Push, &topic, &s.user, purpose)
        .await
        .map_err(|e| refused_delivery(e, PUSH_NOT_SENT, PUSH_NOT_SENT))?;
    s.setup = Some(Setup::Push {
        topic,
        challenge: c.id,
    });
    Ok(())
}

/// Where the pending push stands: approved registers the device; denied or timed out ends
/// the setup with the user's message.
pub async fn poll_push(d: &Deps<'_>, s: &mut PortalSession) -> Result<Progress, PortalError> {
    let Some(Setup::Push {
        topic,
        challenge: cid,
    }) = s.setup.clone()
    else {
        return Err(PortalError::Refused(SETUP_EXPIRED));
    };
    let status = challenge::load(d.store, &cid)
        .await?
        .map(|c| (c.status, c.deadline));
    match status {
        Some((ChallengeStatus::Approved, _)) => {}
        Some((ChallengeStatus::Pending, deadline)) if d.now < deadline => {
            return Ok(Progress::Waiting);
        }
        _ => {
            s.setup = None;
            return Err(PortalError::Refused(PUSH_NOT_APPROVED));
        }
    }
    let id = delivery::random_hex(8)
        .map_err(|e| refused_delivery(Refused::Random(e), PUSH_NOT_SENT, PUSH_NOT_SENT))?;
    registration::update(d.store, &s.user, |r| {
        if !r.push_devices.iter().any(|p| p.topic == topic) {
            r.push_devices.push(PushDevice {
                id: id.clone(),
                label: "Mobile app".into(),
                topic: topic.clone(),
                created: d.now,
            });
        }
        r.default_method.get_or_insert(Method::Push);
    })
    .await?;
    s.setup = None;
    Ok(Progress::Done)
}
