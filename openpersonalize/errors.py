"""The service's errors: one root class, subclasses named exactly as AWS names them.

The wire layer turns any ``ServiceError`` into AWS's error body; the HTTP status
comes from the botocore model of the service being answered (the control plane
answers 400 for all of them, the runtime and events services 404/409 for some),
with ``http_status`` as the fallback.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error the client should see, with the AWS error code as its class name."""

    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return type(self).__name__


class InvalidInputException(ServiceError):
    pass


class InvalidNextTokenException(ServiceError):
    pass


class LimitExceededException(ServiceError):
    pass


class ResourceAlreadyExistsException(ServiceError):
    pass


class ResourceInUseException(ServiceError):
    http_status = 409


class ResourceNotFoundException(ServiceError):
    http_status = 404


class TooManyTagsException(ServiceError):
    pass


class TooManyTagKeysException(ServiceError):
    pass


class UnrecognizedClientException(ServiceError):
    http_status = 403


class InvalidSignatureException(ServiceError):
    http_status = 403


class MissingAuthenticationTokenException(ServiceError):
    http_status = 403
