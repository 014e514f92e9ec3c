"""GraphQL documents for the Dagster+ USER API operations we use (https://<org>.dagster.cloud),
in the shapes of the public user schema (dagster-io/terraform-provider-dagsterplus,
internal/client/schema/schema.graphql). No agent-API document belongs here: the agent API
(`agents(heartbeatedSince:)`, `deployments(deploymentNames:)`, `userCloudAgent`) lives on another
host, for agent tokens. tests/test_contract.py validates every document in this package against
the user schema the sandbox serves."""

AGENTS = """
query MigrationAgents {
  agents {
    id agentLabel status lastHeartbeatTime
    metadata { key value }
    errors { timestamp error { message } }
    codeServerStates { locationName status error { message } }
  }
}
"""

_DEPLOYMENT_FIELDS = "deploymentName deploymentId deploymentType agentType isBranchDeployment"

CURRENT_DEPLOYMENT = f"""
query MigrationCurrentDeployment {{ currentDeployment {{ {_DEPLOYMENT_FIELDS} }} }}
"""

FULL_DEPLOYMENTS = f"""
query MigrationFullDeployments {{ fullDeployments {{ {_DEPLOYMENT_FIELDS} }} }}
"""

DEPLOYMENTS = f"""
query MigrationDeployments {{ deployments {{ {_DEPLOYMENT_FIELDS} }} }}
"""

# The error members every union shares.
_ERRORS = "... on UnauthorizedError { message } ... on PythonError { message }"

DEPLOYMENT_BY_NAME = f"""
query MigrationDeploymentByName($name: String!) {{
  deploymentByName(name: $name) {{
    __typename
    ... on DagsterCloudDeployment {{ {_DEPLOYMENT_FIELDS} }}
    ... on DeploymentNotFoundError {{ message }}
    {_ERRORS}
  }}
}}
"""

BRANCH_DEPLOYMENTS = f"""
query MigrationBranchDeployments($limit: Int!) {{
  branchDeployments(limit: $limit) {{ nodes {{ {_DEPLOYMENT_FIELDS} }} }}
}}
"""

SERVERLESS_STATUS = "query MigrationServerlessStatus { serverless { status } }"

UPDATE_DEPLOYMENT_AGENT_TYPE = f"""
mutation MigrationUpdateDeploymentAgentType($deploymentAgentType: DeploymentAgentType!, $deploymentId: Int) {{
  updateDeploymentAgentType(deploymentAgentType: $deploymentAgentType, deploymentId: $deploymentId) {{
    __typename
    ... on DagsterCloudDeployment {{ {_DEPLOYMENT_FIELDS} }}
    ... on DeploymentNotFoundError {{ message }}
    {_ERRORS}
  }}
}}
"""

CREATE_AGENT_TOKEN = f"""
mutation MigrationCreateAgentToken($description: String) {{
  createAgentToken(description: $description) {{
    __typename
    ... on DagsterCloudAgentToken {{ id token description revoked }}
    {_ERRORS}
  }}
}}
"""

REVOKE_AGENT_TOKEN = f"""
mutation MigrationRevokeAgentToken($tokenId: Int!) {{
  revokeAgentToken(tokenId: $tokenId) {{
    __typename
    ... on DagsterCloudAgentToken {{ id description revoked }}
    ... on DagsterCloudTokenNotFoundError {{ message }}
    {_ERRORS}
  }}
}}
"""

AGENT_TOKENS = f"""
query MigrationAgentTokens {{
  agentTokensOrError {{
    __typename
    ... on DagsterCloudAgentTokens {{ tokens {{ id token description revoked }} }}
    {_ERRORS}
  }}
}}
"""

LOCATIONS_AS_DOCUMENT = "query MigrationLocationsAsDocument { locationsAsDocument { document } }"

_LOCATIONS_RESULT = f"""
    __typename
    ... on InvalidLocationError {{ errors }}
    {_ERRORS}
"""

DEPLOY_LOCATIONS = f"""
mutation MigrationDeployLocations($document: GenericScalar!) {{
  deployLocations(document: $document) {{
    ... on DeployLocationsSuccess {{ locations {{ locationName }} }}
    {_LOCATIONS_RESULT}
  }}
}}
"""

RECONCILE_LOCATIONS = f"""
mutation MigrationReconcileLocations($document: GenericScalar!) {{
  reconcileLocationsFromDocument(document: $document) {{
    ... on ReconcileLocationsSuccess {{ locations {{ locationName }} }}
    {_LOCATIONS_RESULT}
  }}
}}
"""

ADD_OR_UPDATE_LOCATION = f"""
mutation MigrationAddOrUpdateLocation($document: GenericScalar!) {{
  addOrUpdateLocationFromDocument(document: $document) {{
    ... on WorkspaceEntry {{ locationName }}
    {_LOCATIONS_RESULT}
  }}
}}
"""

DELETE_LOCATION = f"""
mutation MigrationDeleteLocation($locationName: String!) {{
  deleteLocation(locationName: $locationName) {{
    __typename
    ... on DeleteLocationSuccess {{ locationName }}
    {_ERRORS}
  }}
}}
"""

WORKSPACE = """
query MigrationWorkspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus updatedTimestamp
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              schedules { name scheduleState { status } }
              sensors { name sensorState { status } }
            }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

DEPLOYMENT_SETTINGS = "query MigrationDeploymentSettings { deploymentSettings { settings } }"

SET_DEPLOYMENT_SETTINGS = f"""
mutation MigrationSetDeploymentSettings($deploymentSettings: DeploymentSettingsInput!) {{
  setDeploymentSettings(deploymentSettings: $deploymentSettings) {{
    __typename
    ... on DeploymentSettings {{ settings }}
    ... on DeploymentNotFoundError {{ message }}
    {_ERRORS}
  }}
}}
"""

RUNS = """
query MigrationRuns($filter: RunsFilter, $cursor: String, $limit: Int) {
  runsOrError(filter: $filter, cursor: $cursor, limit: $limit) {
    __typename
    ... on Runs { results { runId status jobName creationTime } }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN = f"""
mutation MigrationLaunchRun($executionParams: ExecutionParams!) {{
  launchRun(executionParams: $executionParams) {{
    __typename
    ... on LaunchRunSuccess {{ run {{ runId status }} }}
    ... on PipelineNotFoundError {{ message }}
    {_ERRORS}
  }}
}}
"""

RUN = """
query MigrationRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName creationTime startTime endTime tags { key value } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

# The events that say why a run failed: the failed step's error (with its cause, where the
# user's exception is) and the run's own failure.
RUN_FAILURE_EVENTS = """
query MigrationRunFailure($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message cause { message } } }
        ... on RunFailureEvent { message error { message } }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

# Every RunStatus of dagster-graphql 1.13.27, SUSPENDED included (see user_api.graphql).
RUN_STATUSES = (
    "QUEUED",
    "NOT_STARTED",
    "MANAGED",
    "STARTING",
    "STARTED",
    "SUSPENDED",
    "SUCCESS",
    "FAILURE",
    "CANCELING",
    "CANCELED",
)


def run_counts_by_status() -> str:
    """One request that counts the runs in every status, by aliases."""
    fields = "\n".join(
        f"  {status}: runsOrError(filter: {{statuses: [{status}]}}) "
        f"{{ __typename ... on Runs {{ count }} ... on PythonError {{ message }} }}"
        for status in RUN_STATUSES
    )
    return f"query MigrationRunCounts {{\n{fields}\n}}"
