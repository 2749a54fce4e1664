//! The PostgreSQL wire front end.
//!
//! Each connection gets its own handler holding its planner [`Session`]. The
//! handler translates between pgwire's messages and the planner's small
//! interface (`run`, `prepare`, `execute_prepared`) and never touches storage.

mod copy_out;
mod socket;
mod values;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use ciab_planner::{
    Canceller, Engine, Error, Output, Prepared, SERVER_VERSION, Session, TransactionState, sqlstate,
};
use datafusion::arrow::datatypes::SchemaRef;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_describe_response, send_execution_response,
    send_query_response,
};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::QueryParser;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_PORTAL};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// Accepts connections until the task is aborted.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    let pids = Arc::new(RandomPidSecretKeyGenerator::default());
    let cancellers = Arc::new(Cancellers::default());
    let sessions = Arc::new(Sessions::default());
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let connection = Arc::new(Connection::new(
            engine.clone(),
            pids.clone(),
            cancellers.clone(),
            sessions.clone(),
        ));
        tokio::spawn(async move {
            if let Err(e) = socket::process_socket(socket, connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Every session's canceller by the process id and secret key its client
/// was given: a CancelRequest arrives on a connection of its own.
#[derive(Default)]
struct Cancellers(std::sync::Mutex<HashMap<(i32, Bytes), Canceller>>);

impl Cancellers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i32, Bytes), Canceller>> {
        self.0.lock().expect("not poisoned")
    }
}

/// How many sessions the node serves now, against `max_connections`.
#[derive(Default)]
struct Sessions(AtomicUsize);

impl Sessions {
    /// A place for one more session, if there are fewer than `max`.
    fn enter(self: &Arc<Self>, max: usize) -> Option<SessionSlot> {
        let entered = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        entered.ok().map(|_| SessionSlot(self.clone()))
    }
}

/// A session's place among the node's sessions, given back when dropped.
struct SessionSlot(Arc<Sessions>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let before = self.0.0.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a slot was taken for every session");
    }
}

/// One client connection: its session, shared by its handlers.
struct Connection {
    handler: Arc<Handler>,
}

impl Connection {
    fn new(
        engine: Arc<Engine>,
        pids: Arc<RandomPidSecretKeyGenerator>,
        cancellers: Arc<Cancellers>,
        sessions: Arc<Sessions>,
    ) -> Self {
        let session = Arc::new(Mutex::new(None));
        Connection {
            handler: Arc::new(Handler {
                engine,
                pids,
                cancellers,
                sessions,
                slot: std::sync::Mutex::new(None),
                cancel_key: std::sync::Mutex::new(None),
                statements: Default::default(),
                parser: Arc::new(Parser {
                    session: session.clone(),
                }),
                session,
            }),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handler.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.handler.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.handler.clone()
    }
}

// Arc'd: the loop holds the connection as pgwire's handlers do.
impl socket::TransactionTracker for Arc<Connection> {
    fn transaction_status(&self) -> Option<TransactionStatus> {
        // The loop asks between messages, when no handler holds the session.
        let guard = self.handler.session.try_lock().ok()?;
        Some(match guard.as_ref()?.transaction_state() {
            TransactionState::Idle => TransactionStatus::Idle,
            TransactionState::InBlock => TransactionStatus::Transaction,
            TransactionState::Failed => TransactionStatus::Error,
        })
    }

    fn fail_transaction(&self) {
        if let Ok(mut guard) = self.handler.session.try_lock()
            && let Some(session) = guard.as_mut()
        {
            session.abort_transaction();
        }
    }

    fn idle_timeout(&self) -> Option<(std::time::Duration, PgWireError)> {
        let guard = self.handler.session.try_lock().ok()?;
        let (timeout, e) = guard.as_ref()?.idle_timeout()?;
        Some((timeout, fatal(e.sqlstate, e.message)))
    }

    fn statement_parsed(&self, name: &str) {
        let mut names = self.handler.statements.lock().expect("lock poisoned");
        names.insert(name.to_string());
    }

    fn inbox(&self) -> Option<Arc<ciab_planner::Inbox>> {
        let guard = self.handler.session.try_lock().ok()?;
        Some(guard.as_ref()?.inbox())
    }
}

/// `DEALLOCATE [PREPARE] name | ALL`, and `DISCARD ALL`, which
/// deallocates all too. Statements the extended protocol prepared live in
/// pgwire's per-connection store, those SQL's PREPARE made in the session:
/// the front end runs it on both.
enum Deallocate {
    All,
    Name(String),
    /// `DISCARD ALL`: the session forgets its state, then as `All`.
    Discard,
}

impl Deallocate {
    /// The statement `sql` is, if it is a DEALLOCATE (alone in its string).
    fn parse(sql: &str) -> Option<Deallocate> {
        let sql = sql.trim().trim_end_matches(';');
        let mut words = sql.split_whitespace();
        let first = words.next()?;
        if first.eq_ignore_ascii_case("discard") {
            let all = words.next()?.eq_ignore_ascii_case("all");
            return (all && words.next().is_none()).then_some(Deallocate::Discard);
        }
        if !first.eq_ignore_ascii_case("deallocate") {
            return None;
        }
        let mut name = words.next()?;
        if name.eq_ignore_ascii_case("prepare") {
            name = words.next()?;
        }
        if words.next().is_some() {
            return None;
        }
        Some(if name.eq_ignore_ascii_case("all") {
            Deallocate::All
        } else if let Some(quoted) = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Deallocate::Name(quoted.replace("\"\"", "\""))
        } else {
            Deallocate::Name(name.to_lowercase())
        })
    }

    /// Deallocates the protocol's statements; `in_session` tells whether
    /// the session held the statement (and has dropped it).
    fn run<S: pgwire::api::store::PortalStore>(
        &self,
        store: &S,
        names: &std::sync::Mutex<std::collections::BTreeSet<String>>,
        in_session: bool,
    ) -> PgWireResult<Response> {
        let mut names = names.lock().expect("lock poisoned");
        match self {
            Deallocate::All | Deallocate::Discard => {
                for name in std::mem::take(&mut *names) {
                    store.rm_statement(&name);
                }
            }
            Deallocate::Name(_) if in_session => {}
            Deallocate::Name(name) => {
                if !names.remove(name) || store.get_statement(name).is_none() {
                    return Err(wire_error(Error::new(
                        sqlstate::INVALID_SQL_STATEMENT_NAME,
                        format!("prepared statement \"{name}\" does not exist"),
                    )));
                }
                store.rm_statement(name);
            }
        }
        Ok(Response::Execution(Tag::new(self.tag())))
    }

    /// The command tag of its CommandComplete.
    fn tag(&self) -> &'static str {
        match self {
            Deallocate::All => "DEALLOCATE ALL",
            Deallocate::Name(_) => "DEALLOCATE",
            Deallocate::Discard => "DISCARD ALL",
        }
    }
}

type SharedSession = Arc<Mutex<Option<Session>>>;

struct Handler {
    engine: Arc<Engine>,
    pids: Arc<RandomPidSecretKeyGenerator>,
    cancellers: Arc<Cancellers>,
    sessions: Arc<Sessions>,
    /// This session's place among the node's, once started.
    slot: std::sync::Mutex<Option<SessionSlot>>,
    /// This session's key in `cancellers`, once started.
    cancel_key: std::sync::Mutex<Option<(i32, Bytes)>>,
    session: SharedSession,
    parser: Arc<Parser>,
    /// Names of the statements Parse made (some since closed).
    statements: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Handler {
    /// Runs a DEALLOCATE on the statements SQL's PREPARE made and on the
    /// protocol's.
    async fn deallocate<S: pgwire::api::store::PortalStore>(
        &self,
        deallocate: Deallocate,
        store: &S,
    ) -> PgWireResult<Response> {
        let name = match &deallocate {
            Deallocate::Discard => {
                // The session runs it as any statement (an error aborts the
                // block); the protocol's statements go below.
                with_session(&self.session, async |s| {
                    let parsed = s.parse("DISCARD ALL")?;
                    let [statement] = parsed.as_slice() else {
                        unreachable!("DISCARD ALL is one statement");
                    };
                    s.execute(statement, None).await
                })
                .await?
                .map_err(wire_error)?;
                None
            }
            Deallocate::All => None,
            Deallocate::Name(name) => Some(name.clone()),
        };
        let in_session =
            with_session(&self.session, async |s| s.deallocate(name.as_deref())).await?;
        deallocate.run(store, &self.statements, in_session)
    }
}

pub fn wire_error(e: Error) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), e.sqlstate.into(), e.message);
    info.detail = e.detail;
    info.position = e.position.map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

const TOO_MANY_CONNECTIONS: &str = "53300";

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = &message else {
            return Ok(());
        };
        protocol_negotiation(client, startup).await?;
        save_startup_parameters_to_metadata(client, startup);
        let Some(user) = client.metadata().get("user").cloned() else {
            return Err(fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet".into(),
            ));
        };
        let database = client
            .metadata()
            .get("database")
            .cloned()
            .unwrap_or_else(|| ciab_planner::DEFAULT_DATABASE.to_string());
        let slot = self
            .sessions
            .enter(self.engine.max_connections())
            .ok_or_else(|| {
                fatal(
                    TOO_MANY_CONNECTIONS,
                    "sorry, too many clients already".into(),
                )
            })?;
        *self.slot.lock().expect("not poisoned") = Some(slot);
        let session = self
            .engine
            .session(&database, &user)
            .map_err(|e| fatal(e.sqlstate, e.message))?;
        let canceller = session.canceller();
        // The session's own process id, which pg_backend_pid() and
        // pg_locks show; pgwire's generator makes the secret.
        let pid = session.pid();
        *self.session.lock().await = Some(session);
        let (_, secret) = self.pids.generate(client);
        let key = (pid, secret.to_bytes());
        self.cancellers.lock().insert(key.clone(), canceller);
        *self.cancel_key.lock().expect("not poisoned") = Some(key);
        client.set_pid_and_secret_key(pid, secret);
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_string();
        parameters.search_path = "\"$user\", public".to_string();
        parameters.application_name = client.metadata().get("application_name").cloned();
        finish_authentication(client, &parameters).await
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        if let Some(key) = self.cancel_key.get_mut().expect("not poisoned").take() {
            self.cancellers.lock().remove(&key);
        }
    }
}

/// A CancelRequest: stops what the session it names is running, if the
/// secret matches; otherwise nothing, and no answer, as in PostgreSQL.
#[async_trait]
impl CancelHandler for Handler {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes());
        let canceller = self.cancellers.lock().get(&key).cloned();
        if let Some(canceller) = canceller {
            canceller.cancel();
        }
    }
}

/// Runs `f` with the connection's session.
async fn with_session<T>(
    session: &SharedSession,
    f: impl AsyncFnOnce(&mut Session) -> T,
) -> PgWireResult<T> {
    let mut guard = session.lock().await;
    let session = guard
        .as_mut()
        .ok_or_else(|| wire_error(Error::new(sqlstate::PROTOCOL_VIOLATION, "no session")))?;
    Ok(f(session).await)
}

fn field_infos(schema: &SchemaRef, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (_, ty) = values::wire_type(f);
            FieldInfo::new(f.name().clone(), None, None, ty, format.format_for(i))
        })
        .collect()
}

/// Turns a planner output into a pgwire response, streaming rows batch by
/// batch so a large result is never held whole.
fn response(output: Output, format: &Format) -> Response {
    match output {
        Output::Empty => Response::EmptyQuery,
        Output::CopyIn { columns } => {
            Response::CopyIn(CopyResponse::new(0, columns, stream::empty()))
        }
        Output::CopyOut(_) => unreachable!("the query handlers send COPY TO themselves"),
        Output::Command(tag) => match tag.command.as_str() {
            "BEGIN" => Response::TransactionStart(Tag::new("BEGIN")),
            "COMMIT" | "ROLLBACK" => Response::TransactionEnd(Tag::new(&tag.command)),
            _ => Response::Execution(wire_tag(&tag)),
        },
        Output::Rows {
            schema,
            stream,
            tag,
        } => {
            let fields = Arc::new(field_infos(&schema, format));
            let binary: Vec<bool> = fields
                .iter()
                .map(|f| f.format() == FieldFormat::Binary)
                .collect();
            let rows = stream.flat_map(move |batch| {
                let encoded = batch.map_err(|e| wire_error(e.into())).and_then(|b| {
                    values::codecs(&b, &binary)
                        .and_then(|c| values::encode_rows(&c, b.num_rows()))
                        .map_err(wire_error)
                });
                match encoded {
                    Ok(rows) => stream::iter(rows.into_iter().map(Ok).collect::<Vec<_>>()),
                    Err(e) => stream::iter(vec![Err(e)]),
                }
            });
            let mut response = QueryResponse::new(fields, rows);
            if let Some(tag) = tag {
                // pgwire appends the row count; INSERT's tag also has an OID.
                let command = if tag.oid {
                    format!("{} 0", tag.command)
                } else {
                    tag.command
                };
                response.set_command_tag(&command);
            }
            Response::Query(response)
        }
    }
}

/// Sends a response at once, as pgwire would after the handler returns.
async fn send_now<C>(client: &mut C, response: Response) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match response {
        Response::Query(rows) => send_query_response(client, rows, true).await,
        Response::Execution(tag)
        | Response::TransactionStart(tag)
        | Response::TransactionEnd(tag) => send_execution_response(client, tag).await,
        _ => unreachable!("the simple query handler returns the other responses"),
    }
}

fn wire_tag(tag: &ciab_planner::Tag) -> Tag {
    let mut t = Tag::new(&tag.command);
    if tag.oid {
        t = t.with_oid(0);
    }
    if let Some(rows) = tag.rows {
        t = t.with_rows(rows as usize);
    }
    t
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(deallocate) = Deallocate::parse(query) {
            return match self.deallocate(deallocate, client.portal_store()).await {
                Ok(response) => Ok(vec![response]),
                Err(PgWireError::UserError(info)) => Ok(vec![Response::Error(info)]),
                Err(e) => Err(e),
            };
        }
        let script = with_session(&self.session, async |s| s.script(query)).await?;
        let mut script = match script {
            Ok(script) => script,
            Err(e) => return Ok(vec![error_response(e)]),
        };
        // Each statement's answer goes out before the next statement runs:
        // an error in its rows stops the string there and undoes its
        // implicit transaction block.
        loop {
            let step = with_session(&self.session, async |s| s.step(&mut script).await).await?;
            match step {
                None => return Ok(vec![]),
                Some(Err(e)) => return Ok(vec![error_response(e)]),
                Some(Ok(Output::CopyOut(copy))) => {
                    // pgwire would count a COPY header or binary signature
                    // as a row: sent here instead.
                    let tag = copy_out::send(client, copy).await?;
                    send_execution_response(client, tag).await?;
                }
                // Last in their string. pgwire takes COPY's rows from here,
                // and the end of the rows ends the string (`copy_done`).
                Some(Ok(output @ (Output::Empty | Output::CopyIn { .. }))) => {
                    return Ok(vec![response(output, &Format::UnifiedText)]);
                }
                Some(Ok(output)) => {
                    send_now(client, response(output, &Format::UnifiedText)).await?;
                }
            }
        }
    }
}

fn error_response(e: Error) -> Response {
    match wire_error(e) {
        PgWireError::UserError(info) => Response::Error(info),
        _ => unreachable!("wire_error makes user errors"),
    }
}

/// Parses and describes statements for the extended protocol.
struct Parser {
    session: SharedSession,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if Deallocate::parse(sql).is_some() {
            // Run by the front end at Execute (see `Deallocate`).
            return Ok(Some(Prepared {
                statement: None,
                sql: sql.to_string(),
                param_types: vec![],
                schema: None,
            }));
        }
        let declared: Vec<Option<&str>> = types
            .iter()
            .map(|t| t.as_ref().filter(|t| **t != Type::UNKNOWN).map(Type::name))
            .collect();
        let prepared =
            with_session(&self.session, async |s| s.prepare(sql, &declared).await).await?;
        prepared.map(Some).map_err(wire_error)
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .param_types
            .iter()
            .map(|f| values::wire_type(f).1)
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &stmt.schema {
            Some(schema) => field_infos(schema, format.unwrap_or(&Format::UnifiedText)),
            None => vec![],
        })
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// A portal pgwire does not know may be a cursor DECLARE opened, which
    /// PostgreSQL describes as a portal too.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && let Some(name) = message.name.as_deref()
            && pgwire::api::store::PortalStore::get_portal(client.portal_store(), name).is_none()
            && let Some(schema) =
                with_session(&self.session, async |s| s.cursor_columns(name)).await?
        {
            let fields = field_infos(&schema, &Format::UnifiedText);
            return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        // A DEALLOCATE (see `parse_sql`) is prepared without a statement, as
        // an empty query is: the SQL of any other is not looked at again.
        if prepared.statement.is_none()
            && let Some(deallocate) = Deallocate::parse(&prepared.sql)
        {
            return self.deallocate(deallocate, client.portal_store()).await;
        }
        let mut params = Vec::with_capacity(portal.parameters.len());
        for (i, raw) in portal.parameters.iter().enumerate() {
            let field = prepared.param_types.get(i);
            let target = field.map_or(datafusion::arrow::datatypes::DataType::Utf8, |f| {
                f.data_type().clone()
            });
            let wire = portal
                .statement
                .parameter_types
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| values::param_pg_type(field, &target));
            let value = values::decode_param(
                i,
                raw.as_deref(),
                &wire,
                portal.parameter_format.is_binary(i),
                &target,
            )
            .map_err(wire_error)?;
            params.push(value);
        }
        let output = with_session(&self.session, async |s| {
            s.execute_prepared(prepared, params).await
        })
        .await?
        .map_err(wire_error)?;
        if let Output::CopyOut(copy) = output {
            return Ok(Response::Execution(copy_out::send(client, copy).await?));
        }
        match response(output, &portal.result_column_format) {
            // pgwire's Execute gathers all of a portal's rows before it
            // sends the first (`Portal::fetch`), so an Execute for every
            // row streams them here instead: a result larger than memory
            // is never held. An Execute for some rows (a cursor-like
            // fetch) holds at most that many.
            Response::Query(mut rows) if max_rows == 0 => {
                let command = rows.command_tag().to_owned();
                let mut count = 0;
                while let Some(row) = rows.data_rows().next().await {
                    client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                    count += 1;
                }
                // Run to its end, as a fetched portal would be.
                *portal.state().lock().await = PortalExecutionState::Finished;
                Ok(Response::Execution(Tag::new(&command).with_rows(count)))
            }
            other => Ok(other),
        }
    }
}

/// COPY FROM STDIN: the data goes to the session; its result is the
/// CommandComplete (or error) after CopyDone.
#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        with_session(&self.session, async |s| s.copy_data(&copy_data.data).await).await
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let tag = with_session(&self.session, async |s| s.copy_done().await)
            .await?
            .map_err(wire_error)?;
        client
            .send(PgWireBackendMessage::CommandComplete(wire_tag(&tag).into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match with_session(&self.session, async |s| s.copy_fail(&fail.message).await).await {
            Ok(e) => wire_error(e),
            Err(e) => e,
        }
    }
}
