"""GraphQL documents for the Dagster+ operations we use, in the shapes Dagster's own CLI,
agent and Terraform provider send."""

AGENTS = """
query MigrationAgents($heartbeatedSince: Float) {
  agents(heartbeatedSince: $heartbeatedSince) {
    id agentLabel status lastHeartbeatTime
    metadata { key value }
    errors { timestamp error { message } }
    codeServerStates { locationName status error { message } }
  }
}
"""

_DEPLOYMENT_FIELDS = "deploymentName deploymentId deploymentType"

CURRENT_DEPLOYMENT = """
query MigrationCurrentDeployment {
  currentDeployment { deploymentName deploymentId deploymentType agentType }
}
"""

FULL_DEPLOYMENTS = f"""
query MigrationFullDeployments {{ fullDeployments {{ {_DEPLOYMENT_FIELDS} agentType }} }}
"""

DEPLOYMENTS = f"""
query MigrationDeployments($deploymentNames: [String!]) {{
  deployments(deploymentNames: $deploymentNames) {{ {_DEPLOYMENT_FIELDS} agentType }}
}}
"""

SERVERLESS_STATUS = "query MigrationServerlessStatus { serverless { status } }"

# The error members every mutation's union shares.
_ERRORS = "... on UnauthorizedError { message } ... on PythonError { message }"

UPDATE_DEPLOYMENT_AGENT_TYPE = f"""
mutation MigrationUpdateDeploymentAgentType($deploymentAgentType: DeploymentAgentType!, $deploymentId: Int) {{
  updateDeploymentAgentType(deploymentAgentType: $deploymentAgentType, deploymentId: $deploymentId) {{
    __typename
    ... on DagsterCloudDeployment {{ {_DEPLOYMENT_FIELDS} agentType }}
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
        name loadStatus
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

RUN_STATUSES = (
    "QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED",
    "SUCCESS", "FAILURE", "CANCELING", "CANCELED",
)


def run_counts_by_status() -> str:
    """One request that counts the runs in every status, by aliases."""
    fields = "\n".join(
        f"  {status}: runsOrError(filter: {{statuses: [{status}]}}) "
        f"{{ __typename ... on Runs {{ count }} ... on PythonError {{ message }} }}"
        for status in RUN_STATUSES
    )
    return f"query MigrationRunCounts {{\n{fields}\n}}"


ADD_AGENT_HEARTBEATS = """
mutation MigrationAddAgentHeartbeats($serializedAgentHeartbeats: [AgentHeartbeatInput!], $serializedErrors: [String!]) {
  userCloudAgent {
    addAgentHeartbeats(serializedAgentHeartbeats: $serializedAgentHeartbeats, serializedErrors: $serializedErrors) { ok }
  }
}
"""
