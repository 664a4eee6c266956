//! Users, sessions and API tokens in the database. Every function takes the current time,
//! so expiry is tested without waiting.

use super::guard::{Credential, Principal};
use super::password::{self, PasswordError};
use super::secret;
use super::Role;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use secrecy::{ExposeSecret, SecretString};
use soc_core::db::{api_token, session, user};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("a user name is 1 to 64 letters, digits, `.`, `_`, `-` or `@`")]
    InvalidUsername,
    #[error("user `{0}` already exists")]
    UsernameTaken(String),
    #[error("no user `{0}`")]
    NoSuchUser(String),
    #[error("no token `{0}`")]
    NoSuchToken(String),
    #[error("a token's role cannot be above its owner's ({0})")]
    RoleAboveOwner(Role),
    #[error("the stored role `{0}` is unknown")]
    StoredRole(String),
    #[error("the last enabled admin cannot be disabled or demoted")]
    LastAdmin,
}

/// A user as the API shows it: never the hash.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub must_change_password: bool,
    pub created_at: DateTime<Utc>,
}

/// A token as lists show it: its prefix, never the secret.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub role: Role,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A token just made: the secret is in here once and nowhere else.
pub struct NewToken {
    pub secret: SecretString,
    pub view: TokenView,
}

/// A session just started: the cookie's secret and the CSRF token the page echoes.
pub struct NewSession {
    pub secret: SecretString,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// The first admin, made when no user exists yet.
pub struct FirstAdmin {
    pub username: String,
    /// Generated (the user must change it at first sign-in); `None` when it was given.
    pub generated_password: Option<SecretString>,
}

fn role_of(stored: &str) -> Result<Role, AccountError> {
    Role::parse(stored).ok_or_else(|| AccountError::StoredRole(stored.to_string()))
}

pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Hash off the async threads: argon2 takes tens of milliseconds on purpose.
async fn hash_password(password: &str) -> Result<String, AccountError> {
    password::check_policy(password)?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
        .map_err(Into::into)
}

/// The account store over one database connection.
#[derive(Clone)]
pub struct Accounts {
    db: DatabaseConnection,
}

impl Accounts {
    pub fn new(db: DatabaseConnection) -> Self {
        Accounts { db }
    }

    fn view(u: &user::Model) -> Result<UserView, AccountError> {
        Ok(UserView {
            id: u.id.clone(),
            username: u.username.clone(),
            role: role_of(&u.role)?,
            disabled: u.disabled,
            must_change_password: u.must_change_password,
            created_at: u.created_at,
        })
    }

    pub async fn user_count(&self) -> Result<u64, AccountError> {
        Ok(user::Entity::find().count(&self.db).await?)
    }

    async fn find(&self, username: &str) -> Result<user::Model, AccountError> {
        user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(username.to_string()))
    }

    pub async fn user(&self, username: &str) -> Result<UserView, AccountError> {
        Self::view(&self.find(username).await?)
    }

    pub async fn users(&self) -> Result<Vec<UserView>, AccountError> {
        user::Entity::find()
            .order_by_asc(user::Column::Username)
            .all(&self.db)
            .await?
            .iter()
            .map(Self::view)
            .collect()
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
        must_change_password: bool,
        now: DateTime<Utc>,
    ) -> Result<UserView, AccountError> {
        if !valid_username(username) {
            return Err(AccountError::InvalidUsername);
        }
        if self.find(username).await.is_ok() {
            return Err(AccountError::UsernameTaken(username.to_string()));
        }
        let hash = hash_password(password).await?;
        let model = user::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            username: Set(username.to_string()),
            password_hash: Set(hash),
            role: Set(role.as_str().to_string()),
            disabled: Set(false),
            must_change_password: Set(must_change_password),
            created_at: Set(now),
            updated_at: Set(now),
        };
        match model.insert(&self.db).await {
            Ok(u) => Self::view(&u),
            // Two creations raced: the unique key decided.
            Err(_) if self.find(username).await.is_ok() => {
                Err(AccountError::UsernameTaken(username.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// When no user exists, make `admin` with the given password, or a generated one that
    /// must be changed at first sign-in. `None` when users exist already.
    pub async fn ensure_first_admin(
        &self,
        password: Option<&SecretString>,
        now: DateTime<Utc>,
    ) -> Result<Option<FirstAdmin>, AccountError> {
        if self.user_count().await? > 0 {
            return Ok(None);
        }
        let (pw, generated) = match password {
            Some(p) => (p.expose_secret().to_string(), None),
            None => {
                let p = secret::generate_password();
                (p.clone(), Some(SecretString::from(p)))
            }
        };
        match self
            .create_user("admin", &pw, Role::Admin, generated.is_some(), now)
            .await
        {
            Ok(_) => {}
            // Another gateway starting at the same time made it first.
            Err(AccountError::UsernameTaken(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(Some(FirstAdmin {
            username: "admin".into(),
            generated_password: generated,
        }))
    }

    /// The user when the password matches and the account is enabled. An unknown name
    /// costs the same time as a wrong password.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<user::Model>, AccountError> {
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?;
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || match found {
            Some(u) if password::verify(&password, &u.password_hash) => Some(u),
            Some(_) => None,
            None => {
                password::verify_nothing(&password);
                None
            }
        })
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(ok.filter(|u| !u.disabled))
    }

    /// Set a new password and end every session of the user (other than `keep`).
    pub async fn set_password(
        &self,
        username: &str,
        password: &str,
        must_change_password: bool,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let u = self.find(username).await?;
        let hash = hash_password(password).await?;
        let id = u.id.clone();
        let mut m = u.into_active_model();
        m.password_hash = Set(hash);
        m.must_change_password = Set(must_change_password);
        m.updated_at = Set(now);
        m.update(&self.db).await?;
        let mut del = session::Entity::delete_many().filter(session::Column::UserId.eq(id));
        if let Some(keep) = keep {
            del = del.filter(session::Column::Id.ne(keep));
        }
        del.exec(&self.db).await?;
        Ok(())
    }

    async fn enabled_admins(&self) -> Result<u64, AccountError> {
        Ok(user::Entity::find()
            .filter(user::Column::Role.eq(Role::Admin.as_str()))
            .filter(user::Column::Disabled.eq(false))
            .count(&self.db)
            .await?)
    }

    /// Change a user's role and whether the account is enabled. Disabling ends the user's
    /// sessions; their tokens stop working at once because every request reads the owner.
    pub async fn update_user(
        &self,
        username: &str,
        role: Option<Role>,
        disabled: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<UserView, AccountError> {
        let u = self.find(username).await?;
        let was_admin = u.role == Role::Admin.as_str() && !u.disabled;
        let stays_admin = role.map_or(u.role == Role::Admin.as_str(), |r| r == Role::Admin)
            && !disabled.unwrap_or(u.disabled);
        if was_admin && !stays_admin && self.enabled_admins().await? <= 1 {
            return Err(AccountError::LastAdmin);
        }
        let id = u.id.clone();
        let mut m = u.into_active_model();
        if let Some(r) = role {
            m.role = Set(r.as_str().to_string());
        }
        if let Some(d) = disabled {
            m.disabled = Set(d);
        }
        m.updated_at = Set(now);
        let u = m.update(&self.db).await?;
        if u.disabled {
            session::Entity::delete_many()
                .filter(session::Column::UserId.eq(id))
                .exec(&self.db)
                .await?;
        }
        Self::view(&u)
    }

    pub async fn start_session(
        &self,
        user: &user::Model,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<NewSession, AccountError> {
        let secret = secret::generate("");
        let csrf_token = secret::generate("");
        let expires_at = now + ttl;
        session::ActiveModel {
            id: Set(secret::hash(&secret)),
            user_id: Set(user.id.clone()),
            csrf_token: Set(csrf_token.clone()),
            created_at: Set(now),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await?;
        Ok(NewSession {
            secret: secret.into(),
            csrf_token,
            expires_at,
        })
    }

    pub async fn end_session(&self, session_id: &str) -> Result<(), AccountError> {
        session::Entity::delete_by_id(session_id.to_string())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The principal behind a session cookie, if the session is live and its user enabled.
    pub async fn resolve_session(
        &self,
        cookie: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>, AccountError> {
        let id = secret::hash(cookie);
        let Some(s) = session::Entity::find_by_id(id.clone())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        if s.expires_at <= now {
            self.end_session(&id).await?;
            return Ok(None);
        }
        let Some(u) = user::Entity::find_by_id(s.user_id.clone())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        if u.disabled {
            return Ok(None);
        }
        Ok(Some(Principal {
            user_id: u.id,
            username: u.username,
            role: role_of(&u.role)?,
            must_change_password: u.must_change_password,
            credential: Credential::Session {
                id,
                csrf_token: s.csrf_token,
            },
        }))
    }

    pub async fn create_token(
        &self,
        owner: &str,
        name: &str,
        role: Option<Role>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<NewToken, AccountError> {
        let u = self.find(owner).await?;
        let owner_role = role_of(&u.role)?;
        let role = role.unwrap_or(owner_role);
        if role > owner_role {
            return Err(AccountError::RoleAboveOwner(owner_role));
        }
        let secret = secret::generate(secret::TOKEN_PREFIX);
        let m = api_token::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            user_id: Set(u.id.clone()),
            name: Set(name.to_string()),
            role: Set(role.as_str().to_string()),
            token_hash: Set(secret::hash(&secret)),
            prefix: Set(secret.chars().take(10).collect()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            last_used_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(NewToken {
            secret: secret.into(),
            view: Self::token_view(&m, &u.username)?,
        })
    }

    fn token_view(t: &api_token::Model, owner: &str) -> Result<TokenView, AccountError> {
        Ok(TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            owner: owner.to_string(),
            role: role_of(&t.role)?,
            prefix: t.prefix.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        })
    }

    /// Tokens of one user, or of everyone.
    pub async fn tokens(&self, owner: Option<&str>) -> Result<Vec<TokenView>, AccountError> {
        let users: std::collections::HashMap<String, String> = user::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect();
        let mut q = api_token::Entity::find().order_by_asc(api_token::Column::CreatedAt);
        if let Some(owner) = owner {
            q = q.filter(api_token::Column::UserId.eq(self.find(owner).await?.id));
        }
        q.all(&self.db)
            .await?
            .iter()
            .map(|t| {
                let owner = users.get(&t.user_id).map_or("", String::as_str);
                Self::token_view(t, owner)
            })
            .collect()
    }

    /// Revoke a token; `owner` limits it to that user's tokens.
    pub async fn revoke_token(
        &self,
        id: &str,
        owner: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let not_found = || AccountError::NoSuchToken(id.to_string());
        let t = api_token::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(not_found)?;
        if let Some(owner) = owner {
            if self.find(owner).await?.id != t.user_id {
                return Err(not_found());
            }
        }
        if t.revoked_at.is_none() {
            let mut m = t.into_active_model();
            m.revoked_at = Set(Some(now));
            m.update(&self.db).await?;
        }
        Ok(())
    }

    /// The principal behind a bearer token: live, not revoked, its owner enabled. Its role
    /// is the lower of the token's and the owner's, so demoting a user demotes their tokens.
    pub async fn resolve_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>, AccountError> {
        let Some(t) = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(secret::hash(token)))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let Some(u) = user::Entity::find_by_id(t.user_id.clone())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        if u.disabled {
            return Ok(None);
        }
        let role = role_of(&t.role)?.min(role_of(&u.role)?);
        let id = t.id.clone();
        // Record use at most once a minute: a busy script must not write on every call.
        if t.last_used_at
            .is_none_or(|l| now - l > Duration::minutes(1))
        {
            let mut m = t.into_active_model();
            m.last_used_at = Set(Some(now));
            m.update(&self.db).await?;
        }
        Ok(Some(Principal {
            user_id: u.id,
            username: u.username,
            role,
            must_change_password: false,
            credential: Credential::Token { id },
        }))
    }

    /// Whether a principal resolved earlier still holds (for long-lived WebSockets): its
    /// session or token is live and its user enabled.
    pub async fn still_valid(
        &self,
        p: &Principal,
        now: DateTime<Utc>,
    ) -> Result<bool, AccountError> {
        let user_ok = user::Entity::find_by_id(p.user_id.clone())
            .one(&self.db)
            .await?
            .is_some_and(|u| !u.disabled);
        if !user_ok {
            return Ok(false);
        }
        Ok(match &p.credential {
            Credential::Session { id, .. } => session::Entity::find_by_id(id.clone())
                .one(&self.db)
                .await?
                .is_some_and(|s| s.expires_at > now),
            Credential::Token { id } => api_token::Entity::find_by_id(id.clone())
                .one(&self.db)
                .await?
                .is_some_and(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now)),
        })
    }

    /// Delete expired sessions.
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, AccountError> {
        Ok(session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
